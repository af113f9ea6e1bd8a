"""Set-up consistency: pins agree across pyproject.toml, environment.yml and requirements.lock."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for group in project["optional-dependencies"].values() for r in group]
    pins = {}
    for req in reqs:
        name, sep, version = req.partition("==")
        assert sep, f"{req!r} in pyproject.toml is not pinned with =="
        pins[name.lower()] = version
    return pins


def test_environment_yml_matches_pyproject():
    env = dict(re.findall(r"^\s+- ([A-Za-z0-9_.\-]+)==(\S+)$", (ROOT / "environment.yml").read_text(), re.M))
    assert {k.lower(): v for k, v in env.items()} == _pyproject_pins()


def test_lock_contains_every_direct_pin():
    lock = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().split() if "==" in line)
    lock = {k.lower().replace("_", "-"): v for k, v in lock.items()}
    for name, version in _pyproject_pins().items():
        assert lock.get(name.replace("_", "-")) == version, f"requirements.lock disagrees on {name}"


def test_organism_weights_ship_small():
    weights = ROOT / "zsnb" / "organism" / "weights" / "unet.safetensors"
    assert weights.exists() and weights.stat().st_size <= 10 * 2**20
