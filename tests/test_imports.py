"""What importing costs: `--help` and the registry load no diffusers, matplotlib or onnxruntime; a command does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import zsnb

HEAVY = ("diffusers", "matplotlib", "onnxruntime", "transformers", "accelerate")
ENV = {**os.environ, "PYTHONPATH": str(Path(zsnb.__file__).parents[1]), "OMP_NUM_THREADS": "1"}


def fresh(code: str) -> dict:
    """Run `code` in a fresh interpreter; it ends by printing a JSON value, returned here."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_of_both_commands_imports_no_heavy_library():
    """`python -m zsnb segment --help` and `evaluate --help` build their parsers from names alone."""
    got = fresh(f"""
import contextlib, io, json, sys
from zsnb import cli
helps = {{}}
for command in ("segment", "evaluate"):
    with contextlib.redirect_stdout(io.StringIO()) as text:
        try:
            cli.main([command, "--help"])
        except SystemExit as exit:
            assert exit.code == 0
    helps[command] = text.getvalue()
print(json.dumps({{"loaded": sorted(m for m in {HEAVY!r} if m in sys.modules), "helps": helps}}))
""")
    assert got["loaded"] == []
    for text in got["helps"].values():
        assert "--method" in text and "vit-s" in text


def test_the_registry_and_backbones_import_without_diffusers_and_load_it_when_building():
    got = fresh(f"""
import json, sys
import zsnb.registry, zsnb.backbones, zsnb.organism, zsnb.evaluate, zsnb.data
before = sorted(m for m in {HEAVY!r} if m in sys.modules)
from zsnb import registry
methods = {{name: sorted(families) for name, families in registry.methods().items()}}
size = registry.family_params("diffcut", "sdxl").record.size
backbone = zsnb.load_backbone("organism")
print(json.dumps({{"before": before, "methods": methods, "size": size, "diffusers": "diffusers" in sys.modules,
                   "family": backbone.family}}))
""")
    assert got["before"] == [] and got["diffusers"] and got["family"] == "organism"
    assert got["methods"]["diffseg"] == ["organism", "sd1", "sdxl", "vit"] and got["size"] == 1024
    assert set(got["methods"]) == {"diffseg", "diffcut", "adaptive", "randomwalk"}
