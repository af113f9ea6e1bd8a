"""The method registry and `zsnb.segment`: input forms, label sizes, defaults, a method registered here."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zsnb
from zsnb import cli, evaluate, registry, world
from zsnb.parameters import DiffCutParams, Params, parse
from zsnb.protocol import Needs

pytestmark = pytest.mark.usefixtures("one_thread")


def image_forms(h: int, w: int) -> dict[str, object]:
    """One uint8 RGB picture (a world scene resized to h x w) in every input form zsnb.segment takes."""
    scene = world.scene(world.EVAL_SEEDS[1], 64).image
    pil = Image.fromarray((scene * 255).round().astype(np.uint8)).resize((w, h), Image.BILINEAR)
    u8 = np.asarray(pil)
    f = torch.from_numpy(u8 / 255.0).float()  # (H, W, 3), exactly u8 / 255 in float32
    return {"PIL": pil, "uint8 (H, W, 3)": u8, "float numpy (H, W, 3)": f.numpy(),
            "tensor (3, H, W)": f.permute(2, 0, 1), "tensor (H, W, 3)": f}


@pytest.mark.parametrize("method", list(registry.REGISTRY))
@pytest.mark.parametrize("hw", [(32, 32), (37, 53)])
def test_every_input_form_gives_labels_at_the_image_size(organism, method, hw):
    labels = {name: zsnb.segment(method, organism, x) for name, x in image_forms(*hw).items()}
    for name, lab in labels.items():
        assert lab.shape == hw and lab.dtype == torch.int64, name
    first = next(iter(labels.values()))
    assert all(torch.equal(lab, first) for lab in labels.values())  # one picture, one answer


def test_sd_architecture_gives_labels_at_the_image_size():
    """DiffSeg through an SD1.5-architecture UNet (random weights) at a reduced input size: a 37 x 53 image."""
    bb = zsnb.load_backbone("sd15", weights="random")
    assert bb.family == "sd1" and registry.params("diffseg", bb).record.size == 512
    x = np.random.default_rng(0).random((37, 53, 3))
    assert zsnb.segment("diffseg", bb, x, size=64, num_points=4).shape == (37, 53)


def test_randomwalk_runs_on_an_sd_architecture_with_random_weights():
    """The random-walk method through the SD1.5 architecture (random weights) at 64 px: labels at the image size,
    every self-attention layer aggregated into one walk. (SDXL's takes ~50 s to build; run by hand, it passes.)"""
    bb = zsnb.load_backbone("sd15", weights="random")
    assert registry.params("randomwalk", bb).record.threshold is None  # automatic, on every family
    labels = zsnb.segment("randomwalk", bb, np.random.default_rng(1).random((40, 48, 3)), size=64, k=2)
    assert labels.shape == (40, 48) and labels.dtype == torch.int64 and labels.min() == 0


def test_native_input_sizes_per_method_and_family():
    """The official code's input sides: DiffSeg 512 on SD1.x/2.x, DiffCut 1024 on SD1.4 and SSD-1B alike."""
    sizes = {(m, f): p.size for m, by_family in zsnb.methods().items() for f, p in by_family.items()}
    assert {k: sizes[k] for k in [("diffseg", "sd1"), ("diffcut", "sd1"), ("diffcut", "sdxl")]} == {
        ("diffseg", "sd1"): 512, ("diffcut", "sd1"): 1024, ("diffcut", "sdxl"): 1024}
    assert all(sizes[m, "organism"] == 32 for m in registry.REGISTRY)
    assert sizes["adaptive", "sd1"] == 512
    assert "randomwalk" in zsnb.methods() and sizes["randomwalk", "vit"] == 224


def test_parameters_resolve_official_dataset_tuned_then_overrides_with_their_sources(organism):
    official = registry.family_params("diffseg", "sd1")
    assert official.record.kl_threshold == 1.1 and official.sources["kl_threshold"] == "official"
    city = registry.family_params("diffseg", "sd1", "cityscapes-27")  # the paper's setting
    assert city.record.kl_threshold == 0.9 and city.sources["kl_threshold"] == "dataset cityscapes-27"
    assert city.sources["size"] == "family sd1"
    tuned = registry.params("diffseg", organism, "cityscapes-27")
    assert tuned.record.kl_threshold != 0.9 and tuned.sources["kl_threshold"].startswith("organism tuning")
    caller = registry.params("diffseg", organism, kl_threshold=0.3)
    assert caller.record.kl_threshold == 0.3 and caller.sources["kl_threshold"] == "caller"
    assert registry.family_params("diffseg", "organism", tuned=False).record.kl_threshold == 1.1
    assert "DiffSeg code" in official.table() and "caller" in caller.table()


def test_records_are_typed_frozen_and_coerced():
    record = registry.family_params("diffcut", "sd1", pamr_dilations=[1, 2], out_size=None).record
    assert isinstance(record, DiffCutParams) and record.pamr_dilations == (1, 2) and record.out_size is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.tau = 0.1
    assert record.replace(tau=1).tau == 1.0 and isinstance(record.replace(tau=1).tau, float)
    with pytest.raises(zsnb.ZsnbError, match=r"tau='0.3' \(caller\) is not of type float"):
        registry.family_params("diffcut", "sd1", tau="0.3")
    with pytest.raises(zsnb.ZsnbError, match="is not of type 'none' | 'seeded'"):
        registry.family_params("diffcut", "sd1", noise="gaussian")
    assert parse(DiffCutParams, "pamr_dilations", "1,2,4") == (1, 2, 4)
    assert parse(DiffCutParams, "out_size", "None") is None and parse(DiffCutParams, "refine", "false") is False
    with pytest.raises(zsnb.ZsnbError, match="--set tau=high: not a float; for example --set tau=0.5"):
        parse(DiffCutParams, "tau", "high")


def test_unknown_override_names_the_valid_keys(organism, scene_image):
    with pytest.raises(zsnb.ZsnbError, match=r"unknown parameter 'taus' \(caller\).*valid keys: .*tau: float"):
        zsnb.segment("diffcut", organism, scene_image, taus=0.4)
    with pytest.raises(zsnb.UnknownNameError, match="registered: diffseg, diffcut, adaptive"):
        zsnb.segment("kmeans", organism, scene_image)
    with pytest.raises(zsnb.ZsnbError, match="family 'mps-unet'"):
        registry.family_params("diffseg", "mps-unet")


@dataclasses.dataclass(frozen=True)
class BandsParams(Params):
    """A toy method's record: `bands` horizontal stripes, read after a self-attention capture at `timestep`."""

    size: int = 32
    timestep: int = 300
    bands: int = 2

    def needs(self) -> Needs:
        return Needs((self.timestep,), attention="self")


def bands(cap, index: int, p: BandsParams, out_hw: tuple[int, int]) -> torch.Tensor:
    """Stripes whatever the attention says (it must be captured, though)."""
    assert cap.self_attention(p.timestep, index)
    return (torch.arange(out_hw[0]) * p.bands // out_hw[0])[:, None].expand(out_hw)


@pytest.fixture
def toy():
    """A method registered from this test file only."""
    method = registry.register(registry.Method("toy", "horizontal bands", BandsParams, {"organism": {}}, bands))
    yield method
    del registry.REGISTRY["toy"]


def test_a_method_registered_in_a_test_file_is_listed_segments_and_evaluates(toy, organism, tmp_path, capsys):
    assert zsnb.methods()["toy"] == {"organism": BandsParams()}
    labels = zsnb.segment("toy", organism, np.zeros((20, 30, 3)), bands=4)
    assert labels.shape == (20, 30) and labels.unique().tolist() == [0, 1, 2, 3]
    res = evaluate.evaluate("toy", "organism", "world", tmp_path / "api", limit=2, device="cpu", progress=False)
    assert res["complete"] and res["scores"]["segments"] == 2 and res["config"]["parameters"]["bands"] == 2
    cli.main(["evaluate", "--method", "toy", "--out", str(tmp_path / "cli"), "--limit", "2", "--device", "cpu",
                   "--no-progress", "--set", "bands=3"])
    assert "mIoU objects" in capsys.readouterr().out
    with pytest.raises(zsnb.ZsnbError, match="registered already"):
        registry.register(toy)


def test_algorithm_modules_import_no_diffusers():
    code = ("import sys, zsnb.diffseg, zsnb.diffcut, zsnb.pamr, zsnb.hierarchy, zsnb.metrics; "
            "assert 'diffusers' not in sys.modules, 'diffusers imported'")
    env = {**os.environ, "PYTHONPATH": str(Path(zsnb.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
