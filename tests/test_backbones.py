"""Backbones: names, offline behaviour, random weights of the real architectures, devices and dtypes."""

from __future__ import annotations

import json
import time
import warnings

import pytest
import torch

from zsnb import UnknownNameError, WeightsUnavailable, ZsnbError, backbones, capture, load_backbone


def test_unknown_backbone_lists_known_names():
    with pytest.raises(UnknownNameError, match="sd15.*ssd-1b.*organism"):
        load_backbone("sd99")


def test_pretrained_offline_raises_quickly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: nothing downloaded
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(WeightsUnavailable, match="hf download stable-diffusion-v1-5.*organism"):
            load_backbone("sd15")
    assert time.perf_counter() - start < 10
    assert not [w for w in seen if "deprecated" in str(w.message)]  # diffusers' hub lookup warns otherwise


def test_progress_false_silences_loading_bars_then_restores(monkeypatch):
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as transformers_logging

    def states() -> tuple[bool, bool, bool]:
        return (diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled(),
                not are_progress_bars_disabled())

    during = []

    def fake_load(*args):
        during.append(states())
        raise WeightsUnavailable("stop here")

    monkeypatch.setattr(backbones, "_load_pretrained", fake_load)
    before = states()
    for progress in (False, True):
        with pytest.raises(WeightsUnavailable):
            load_backbone("sd15", progress=progress)
        assert states() == before
    assert during == [(False, False, False), before]


def test_local_folder_that_is_not_a_diffusers_model(tmp_path):
    (tmp_path / "notes.txt").write_text("photos")
    with pytest.raises(WeightsUnavailable, match="not a diffusers model folder.*model_index.json.*unet/config.json"
                       ) as err:
        load_backbone(str(tmp_path))
    assert "hf download" not in str(err.value)
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(WeightsUnavailable, match="local folder.*could not be loaded.*save_pretrained") as err:
        load_backbone(str(tmp_path))
    assert "hf download" not in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "cuda:0"} if not torch.cuda.is_available() else {"device": "nonsense"}, "device"),
        ({"device": "nonsense"}, "device"),
        ({"dtype": torch.float16}, "float16"),
        ({"dtype": "float16"}, "float16 on the CPU"),
        ({"dtype": "double"}, "'float32'.*'bfloat16'"),
        ({"dtype": torch.int8}, "dtype"),
        ({"weights": "imagenet"}, "weights"),
    ],
)
def test_bad_device_dtype_weights(kwargs, match):
    with pytest.raises(ZsnbError, match=match):
        load_backbone("organism", **kwargs)


def test_dtype_names_accepted():
    assert load_backbone("organism", dtype="torch.float32").dtype == torch.float32


def test_random_weights_need_a_shipped_config(tmp_path):
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(ZsnbError, match="sd14, sd15, sd21-base, ssd-1b, sdxl"):
        load_backbone(str(tmp_path), weights="random")


def test_every_name_ships_its_configs():
    for spec in backbones.SPECS.values():
        folder = backbones.CONFIG_DIR / str(spec.random_config)
        files = ["unet", "vae", "scheduler", "text_encoder"] + (["text_encoder_2"] if spec.family == "sdxl" else [])
        assert all((folder / f"{f}.json").is_file() for f in files), folder
    sd21 = {f: json.loads((backbones.CONFIG_DIR / "sd21-base" / f"{f}.json").read_text())
            for f in ("unet", "text_encoder")}
    assert sd21["unet"]["attention_head_dim"] == [5, 10, 20, 20] and sd21["unet"]["cross_attention_dim"] == 1024
    assert sd21["unet"]["use_linear_projection"] is True
    text = sd21["text_encoder"]
    assert (text["hidden_size"], text["num_hidden_layers"], text["hidden_act"]) == (1024, 23, "gelu")


def test_dtype_cast_and_vae_dtype_without_diffusers_warnings(capfd):
    assert load_backbone("organism", dtype="bfloat16").dtype == torch.bfloat16
    assert "Casting directly" not in capfd.readouterr().err  # diffusers warns on a plain model.to(dtype)
    bf16 = torch.bfloat16
    assert backbones._vae_dtype({"force_upcast": True}, bf16) == backbones._vae_dtype({}, bf16) == torch.float32
    assert backbones._vae_dtype({"force_upcast": False}, bf16) == bf16


def meta_backbone(name: str) -> backbones.Backbone:
    """A named architecture built from its shipped configs on the meta device: real layout, no memory, no values
    (SDXL's UNet alone is 2.6 B parameters, 10 GB in float32)."""
    with torch.device("meta"):
        parts = backbones._build_random(backbones.SPECS[name], torch.device("meta"), torch.float32, 0)
    return backbones.Backbone(name, *parts, weights="random", family=backbones.SPECS[name].family)


def test_sd21_base_architecture_captures_16_layers_like_sd1():
    backbone = meta_backbone("sd21-base")
    cap = capture(backbone, torch.rand(3, 64, 64), timesteps=(300,), size=64)
    queries = sorted((m.shape[0] for m in cap.self_attention(300).values()), reverse=True)
    assert queries == [64] * 5 + [16] * 5 + [4] * 5 + [1]  # latent 8, 4, 2, 1 at 64 px
    assert backbone.encode_prompt("").encoder_hidden_states.shape == (1, 77, 1024)


def test_sdxl_architecture_captures_70_self_attention_layers():
    backbone = meta_backbone("sdxl")
    unet, vae = backbone.unet, backbone.vae
    cap = capture(backbone, torch.rand(3, 64, 64), timesteps=(300,), size=64)
    queries = [m.shape[0] for m in cap.self_attention(300).values()]
    # down: 2 x 2 + 2 x 10 blocks; mid: 10; up: 3 x 10 + 3 x 2 (latent 8 at 64 px: sides 4 and 2)
    assert len(queries) == 70 and queries.count(16) == 10 and queries.count(4) == 60
    cfg = unet.config
    assert list(cfg.transformer_layers_per_block) == [1, 2, 10] and cfg.addition_embed_type == "text_time"
    # pooled text (1280) + 6 size numbers x 256 sinusoid channels
    assert cfg.projection_class_embeddings_input_dim == 2816 == 1280 + 6 * cfg.addition_time_embed_dim
    assert vae.config.force_upcast and vae.config.scaling_factor == 0.13025


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


def attention_probabilities_reference(backbone, layers: list[str], image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Head-averaged softmax(QK^T / sqrt(d)) of `layers` from diffusers' own `get_attention_scores`, on each
    layer's input as recorded by a forward pre-hook during a plain forward (diffusers' default processors)."""
    inputs, hooks = {}, []
    for name in layers:
        module = backbone.unet.get_submodule(name)
        hooks.append(module.register_forward_pre_hook(lambda m, args, name=name: inputs.setdefault(name, args[0])))
    try:
        x = backbone.encode_image(image[None])
        cond = backbone.encode_prompt("").encoder_hidden_states.to(backbone.dtype)
        backbone.unet(x, torch.tensor([300]), cond)
    finally:
        for hook in hooks:
            hook.remove()
    maps = {}
    for name, h in inputs.items():
        attn = backbone.unet.get_submodule(name)
        probs = attn.get_attention_scores(attn.head_to_batch_dim(attn.to_q(h)), attn.head_to_batch_dim(attn.to_k(h)))
        maps[name] = probs.unflatten(0, (h.shape[0], attn.heads)).float().mean(1)  # (B, Q, K)
    return maps


@torch.no_grad()
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_captured_maps_are_the_attention_probabilities(sd15_random, dtype):
    """Captured maps equal diffusers' attention probabilities averaged over heads, on SD1.5's architecture.

    float16 is not tested: zsnb refuses it on the CPU (slow, some ops missing); bfloat16 has the same 16 bits
    with fewer mantissa bits (8), so it is the harder case for agreement.
    """
    from diffusers import UNet2DConditionModel

    from zsnb.backbones import Backbone, Conditioning

    unet = sd15_random.unet
    if dtype != unet.dtype:  # a cast copy, built without a second float32 copy (memory)
        with torch.device("meta"):
            unet = UNet2DConditionModel.from_config(sd15_random.unet.config)
        unet.load_state_dict({k: v.to(dtype) for k, v in sd15_random.unet.state_dict().items()}, assign=True)
    states = sd15_random.encode_prompt("").encoder_hidden_states.to(dtype)
    backbone = Backbone("sd15", unet, sd15_random.vae, sd15_random.scheduler, lambda p: Conditioning(states),
                        128, "random", "sd1")
    layers = [names[0] for names in backbone.attention_layers("self").values()] + ["up_blocks.3.attentions.2."
                                                                                  "transformer_blocks.0.attn1"]
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    cap = capture(backbone, image, timesteps=(300,), size=128)  # maps of 256, 64, 16 and 4 queries
    reference = attention_probabilities_reference(backbone, layers, image)
    # float32: rounding only (measured <= 1.3e-6 relative). bfloat16 keeps 8 significant bits, so a score s
    # is rounded by up to |s| / 256 and the two computations scale and sum in different orders: measured
    # <= 0.9% relative. Random weights give near-uniform maps (1/keys +- 30%), which these bounds still tell
    # apart from uniform.
    atol, rtol = (1e-7, 1e-5) if dtype == torch.float32 else (1e-4, 2e-2)
    for name in layers:
        torch.testing.assert_close(cap.self_attention(300)[name], reference[name][0], atol=atol, rtol=rtol)


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

