"""Smoke run: every notebook executes top to bottom on Stable Diffusion architectures with random weights.

It checks that every cell runs on the SD path (parameters, sizes, memory budget, layer names), not what random
weights segment. Inputs are reduced to 128 px (16 x 16 latents) so each notebook runs on a CPU in under a minute;
256 px where a notebook needs 16 x 16 attention maps (DiffSeg's anchors on SSD-1B, whose attention starts one
level down) or pixel pairs at every resolution (02). Notebook 00 shows only the organism and is left out.
DiffCut's notebook also runs on SSD-1B (the SDXL family).

Every notebook 01-08 also runs on the ViT ("vit-s": pretrained only, at its native 224 px, no timesteps, no noise,
no untrained copy), on two scenes: the parts that do not apply to it print one sentence instead of failing.
"""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SMALL = {"weights": "random", "size": 128, "device": "cpu"}
RUNS: dict[str, dict] = {
    "01_attention_extraction": {"timesteps": [50, 300]},
    "02_similarity_properties": {"n_scenes": 2, "size": 256},
    "03_timestep_hierarchy": {"n_scenes": 2, "timesteps": [0, 300], "noise_modes": ["none"]},
    "04_diffseg": {"n_scenes": 2, "tau_factors": [0.5, 1.0]},
    "05_diffcut": {"n_scenes": 2},
    "06_adaptive_timesteps": {"n_scenes": 2},
    "07_benchmarks": {"limit": 2},
    "08_random_walk": {"n_scenes": 2, "powers": [1, 2]},
}
CASES = [(name, "sd15") for name in RUNS] + [("05_diffcut", "ssd-1b")]
SSD1B = {"size": 256}
VIT_RUNS: dict[str, dict] = {**RUNS, "02_similarity_properties": {"n_scenes": 2}}  # 224 px: 256 is no patch multiple
VIT_SKIPPED = ("03_timestep_hierarchy", "06_adaptive_timesteps")


@pytest.mark.parametrize(("name", "backbone"), CASES, ids=[f"{n[:2]}-{b}" for n, b in CASES])
def test_notebook_runs_on_random_sd(name, backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("ZSNB_FIGURES", str(tmp_path / "figures"))  # leave the committed figures alone
    params = {**SMALL, **RUNS[name], **(SSD1B if backbone == "ssd-1b" else {}), "backbone": backbone}
    if name == "07_benchmarks":
        params["out_root"] = str(tmp_path / "eval")
    papermill.execute_notebook(NOTEBOOKS / f"{name}.ipynb", tmp_path / f"{name}.ipynb", parameters=params,
                               cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
    assert (tmp_path / "figures").is_dir() or name == "07_benchmarks"


@pytest.mark.parametrize("name", list(VIT_RUNS), ids=[n[:2] for n in VIT_RUNS])
def test_notebook_runs_on_the_vit(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ZSNB_FIGURES", str(tmp_path / "figures"))
    params = {**VIT_RUNS[name], "backbone": "vit-s", "device": "cpu"}
    if name == "07_benchmarks":
        params["out_root"] = str(tmp_path / "eval")
    papermill.execute_notebook(NOTEBOOKS / f"{name}.ipynb", tmp_path / f"{name}.ipynb", parameters=params,
                               cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
    if name in VIT_SKIPPED:  # its sections need timesteps: one sentence says so, no figure is drawn
        nb = json.loads((tmp_path / f"{name}.ipynb").read_text())
        printed = "".join(t for c in nb["cells"] for o in c.get("outputs", []) for t in o.get("text", []))
        assert "skipped: the ViT has no timesteps" in printed
    else:
        assert (tmp_path / "figures").is_dir()
