"""Capture on the organism: shapes, determinism, processors restored, early stop, bad input."""

from __future__ import annotations

import pytest
import torch

from zsnb import ZsnbError, capture
from zsnb.extract import UnknownNameError, attention_processors, tap_aliases


def test_self_attention_maps_by_resolution(organism, scene_image):
    cap = capture(organism, scene_image, timesteps=(300,))
    maps = cap.self_attention(300)
    sides = sorted(int(m.shape[0] ** 0.5) for m in maps.values())
    expected = {res: len(names) for res, names in organism.attention_layers("self").items()}
    assert {s: sides.count(s) for s in set(sides)} == expected
    for m in maps.values():
        assert m.shape[0] == m.shape[1]
        assert m.dtype == torch.float64  # the organism runs in float64 on the CPU: same maps on every CPU
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[0], dtype=m.dtype))
        assert (m >= 0).all()


def test_capture_is_bitwise_deterministic(organism, scene_image):
    a = capture(organism, scene_image, timesteps=(50, 300), attention="both", features=("down_last_attn1",))
    b = capture(organism, scene_image, timesteps=(50, 300), attention="both", features=("down_last_attn1",))
    assert a.maps.keys() == b.maps.keys()
    assert all(torch.equal(a.maps[k], b.maps[k]) for k in a.maps)
    assert torch.equal(a.features(50, "down_last_attn1"), b.features(50, "down_last_attn1"))


def test_batched_timesteps_equal_separate_runs(organism, scene_image):
    both = capture(organism, scene_image, timesteps=(50, 500), noise="seeded")
    one = capture(organism, scene_image, timesteps=(500,), noise="seeded")
    for name, m in one.self_attention(500).items():
        torch.testing.assert_close(both.self_attention(500)[name], m, atol=1e-5, rtol=1e-4)


def test_draws_average_the_captures_of_successive_seeds(organism, scene_image):
    kw = {"timesteps": (500,), "noise": "seeded", "features": ("down_last_attn1",)}
    mean = capture(organism, scene_image, seed=7, draws=2, **kw)
    a, b = capture(organism, scene_image, seed=7, **kw), capture(organism, scene_image, seed=8, **kw)
    for name, m in mean.self_attention(500).items():
        torch.testing.assert_close(m, (a.self_attention(500)[name] + b.self_attention(500)[name]) / 2)
        assert not torch.allclose(a.self_attention(500)[name], b.self_attention(500)[name])  # draws differ
    torch.testing.assert_close(mean.features(500, "down_last_attn1"),
                               (a.features(500, "down_last_attn1") + b.features(500, "down_last_attn1")) / 2)
    assert torch.equal(capture(organism, scene_image, seed=7, draws=1, **kw).maps[next(iter(a.maps))],
                       a.maps[next(iter(a.maps))])


def test_list_of_images_is_one_batch(organism, scene_image):
    cap = capture(organism, [scene_image, scene_image.flip(-1)], timesteps=(300,))
    name = next(iter(cap.self_attention(300)))
    assert not torch.equal(cap.self_attention(300, 0)[name], cap.self_attention(300, 1)[name])
    with pytest.raises(ZsnbError, match="index 2"):
        cap.self_attention(300, 2)


def test_capture_matches_plain_forward_output(organism, scene_image):
    """The capture processor computes the same attention as diffusers' default processor."""
    x = organism.encode_image(scene_image[None])
    t = torch.tensor([300])
    cond = organism.encode_prompt("").encoder_hidden_states
    plain = organism.unet(x, t, cond).sample
    from zsnb.extract import AttentionStore, CaptureProcessor

    layers = {n.removesuffix(".processor") for n in organism.unet.attn_processors}
    store = AttentionStore(layers, set(), stop_when_done=False)
    with attention_processors(organism.unet, {n: CaptureProcessor(store, n, block=7) for n in layers}):
        captured = organism.unet(x, t, cond).sample
    torch.testing.assert_close(captured, plain, atol=1e-5, rtol=1e-4)


def test_processors_restored_after_error(organism, scene_image):
    before = dict(organism.unet.attn_processors)
    with pytest.raises(RuntimeError, match="boom"), attention_processors(organism.unet, {}):
        raise RuntimeError("boom")
    assert dict(organism.unet.attn_processors) == before
    capture(organism, scene_image, timesteps=(300,))
    assert dict(organism.unet.attn_processors) == before


def test_stop_after_auto_skips_the_decoder(organism, scene_image):
    calls = []
    hook = organism.unet.conv_out.register_forward_hook(lambda *a: calls.append(1))
    try:
        cap = capture(organism, scene_image, timesteps=(50,), noise="seeded", attention=None,
                      features=("down_last_attn1",), stop_after="auto")
        full = capture(organism, scene_image, timesteps=(50,), noise="seeded", attention=None,
                       features=("down_last_attn1",))
    finally:
        hook.remove()
    assert len(calls) == 1  # only the full forward reached the output convolution
    assert torch.equal(cap.features(50, "down_last_attn1"), full.features(50, "down_last_attn1"))


def test_diffcut_tap_is_last_self_attention_of_deepest_attention_down_block(organism):
    assert tap_aliases(organism.unet)["down_last_attn1"] == "down_blocks.3.attentions.0.transformer_blocks.0.attn1"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timesteps": (1000,)}, "timesteps"),
        ({"timesteps": (-1,)}, "timesteps"),
        ({"timesteps": (300, 300)}, "repeats"),
        ({"noise": "gaussian"}, "noise"),
        ({"attention": "all"}, "attention"),
        ({"stop_after": "decoder"}, "stop_after"),
        ({"resolutions": (3,)}, "resolutions"),
        ({"size": 30}, "multiple of 8"),
        ({"draws": 0}, "draws"),
        ({"draws": 2}, "noise='seeded'"),
    ],
)
def test_bad_arguments(organism, scene_image, kwargs, match):
    with pytest.raises(ZsnbError, match=match):
        capture(organism, scene_image, **kwargs)


def test_unknown_tap_lists_available(organism, scene_image):
    with pytest.raises(UnknownNameError, match="down_last_attn1"):
        capture(organism, scene_image, features=("nope",))
    cap = capture(organism, scene_image, attention=None, features=("down_last_attn1",), stop_after="auto")
    with pytest.raises(UnknownNameError, match="was not captured"):
        cap.features(300, "mid")
    with pytest.raises(ZsnbError, match="timestep 50 was not captured"):
        cap.features(50, "down_last_attn1")
    with pytest.raises(ZsnbError, match="no self-attention"):
        cap.self_attention(300)


def test_query_maps_average_layers_of_each_side(organism, scene_image):
    cap = capture(organism, scene_image, timesteps=(300,))
    qm = cap.query_maps(300, (0.5, 0.25))
    assert list(qm) == sorted(organism.attention_layers("self"), reverse=True)
    for side, m in qm.items():
        assert m.shape == (side, side)
        torch.testing.assert_close(m.sum(), torch.tensor(1.0, dtype=m.dtype))
    with pytest.raises(ZsnbError, match="fractions"):
        cap.query_maps(300, (1.0, 0.5))
