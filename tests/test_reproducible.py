"""What makes stored outputs the same on every CPU: float64 on the organism, CPU-independent noise, stable files."""

from __future__ import annotations

import json

import torch

import zsnb
from zsnb import diffseg, viz


def test_organism_runs_in_float64_on_cpu_and_float32_on_request(organism):
    assert organism.dtype == torch.float64
    assert zsnb.load_backbone("organism", dtype=torch.float32).dtype == torch.float32


def test_algorithms_keep_float64(organism, scene_image):
    cap = zsnb.capture(organism, scene_image, timesteps=(300,))
    agg = diffseg.aggregate(cap.self_attention(300))
    assert agg.dtype == torch.float64
    assert diffseg.aggregate({k: v.float() for k, v in cap.self_attention(300).items()}).dtype == torch.float32


def test_seeded_noise_is_drawn_in_float64(organism, scene_image, monkeypatch):
    # float32 randn takes a vectorised path whose values differ between CPU instruction sets; float64 does not
    seen = []
    real = torch.randn

    def spy(*args, **kwargs):
        seen.append(kwargs.get("dtype"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "randn", spy)
    zsnb.capture(organism, scene_image, timesteps=(50,), noise="seeded")
    assert seen == [torch.float64]


def test_save_json_rounds_floats_and_honours_figures_env(tmp_path, monkeypatch):
    monkeypatch.setenv(viz.FIGURES_ENV, str(tmp_path / "figs"))
    record = {"a": 0.9081233193476995, "b": [torch.tensor(1 / 3), 2], "c": {"d": 12345.678901}}
    path = viz.save_json(record, "x")
    assert path == tmp_path / "figs" / "x.json"
    assert json.loads(path.read_text()) == {"a": 0.908123, "b": [0.333333, 2], "c": {"d": 12345.7}}
