"""Backbones: names, offline behaviour, random weights of the real architectures, devices and dtypes."""

from __future__ import annotations

import time

import pytest
import torch

from zsnb import UnknownNameError, WeightsUnavailable, ZsnbError, capture, load_backbone


def test_unknown_backbone_lists_known_names():
    with pytest.raises(UnknownNameError, match="sd15.*ssd-1b.*organism"):
        load_backbone("sd99")


def test_pretrained_offline_raises_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: nothing downloaded
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailable, match="hf download stable-diffusion-v1-5.*organism"):
        load_backbone("sd15")
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "cuda:0"} if not torch.cuda.is_available() else {"device": "nonsense"}, "device"),
        ({"device": "nonsense"}, "device"),
        ({"dtype": torch.float16}, "float16"),
        ({"dtype": torch.int8}, "dtype"),
        ({"weights": "imagenet"}, "weights"),
    ],
)
def test_bad_device_dtype_weights(kwargs, match):
    with pytest.raises(ZsnbError, match=match):
        load_backbone("organism", **kwargs)


def test_random_weights_need_a_shipped_config():
    with pytest.raises(ZsnbError, match="sd14, sd15, ssd-1b"):
        load_backbone("sdxl", weights="random")


def test_organism_layout_mirrors_sd(organism):
    layers = organism.attention_layers("self")
    assert sorted(layers) == [4, 8, 16]  # three resolutions, the mid block at the deepest
    assert any(n.startswith("mid_block") for n in layers[4])
    assert organism.vae is None and organism.latent_scale == 1.0
    assert organism.weights == "trained"


@pytest.fixture(scope="module")
def sd15_random():
    return load_backbone("sd15", weights="random")


def test_sd15_random_capture_yields_16_self_attention_maps(sd15_random):
    image = torch.rand(3, 512, 512, generator=torch.Generator().manual_seed(0))
    cap = capture(sd15_random, image, timesteps=(300,))
    queries = sorted((m.shape[0] for m in cap.self_attention(300).values()), reverse=True)
    assert len(queries) == 16
    assert queries == [4096] * 5 + [1024] * 5 + [256] * 5 + [64]
    assert sd15_random.latent_scale == pytest.approx(0.18215)


def test_sd15_random_rejects_non_empty_prompt(sd15_random):
    with pytest.raises(ZsnbError, match="empty prompt"):
        sd15_random.encode_prompt("a cat")


def test_ssd1b_random_diffcut_tap_shape():
    backbone = load_backbone("ssd-1b", weights="random")
    size = 256  # the official 1024 gives (32, 32, 1280): latent 1024/8 = 128, two downsamples to 32
    latent = size // backbone.vae_factor
    cap = capture(backbone, torch.rand(3, size, size), timesteps=(50,), noise="seeded", attention=None,
                  features=("down_last_attn1",), stop_after="auto", size=size)
    feats = cap.features(50, "down_last_attn1")
    assert cap.taps["down_last_attn1"] == "down_blocks.2.attentions.1.transformer_blocks.3.attn1"
    assert tuple(feats.shape) == (latent // 4, latent // 4, 1280)
    assert backbone.resolution == 1024 and backbone.latent_resolution // 4 == 32
