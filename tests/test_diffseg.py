"""Tests for zsnb.diffseg: a float64 per-anchor reference, planted partitions, aggregation, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zsnb import diffseg

FLOOR = torch.finfo(torch.float32).tiny


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- straightforward float64 reference


def ref_kl(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Direct symmetric KL on the last axis, as official KL(): ½Σ x(log x - log y) + ½Σ y(log y - log x)."""
    quotient = x.clamp_min(FLOOR).log() - y.clamp_min(FLOOR).log()
    return 0.5 * (x * quotient).sum(-1) - 0.5 * (y * quotient).sum(-1)


def ref_segment(agg: torch.Tensor, taus: list[float], m: int, out_size: int) -> tuple[torch.Tensor, float]:
    """Per-anchor loops in float64 -> (labels, smallest |KL - tau| seen, to rule out borderline cases)."""
    r = agg.shape[0]
    maps = agg.reshape(r * r, r * r).double()
    step = (r - 1) // (m - 1)
    coords = [(r - 1 - step * (m - 1)) // 2 + step * k for k in range(m)]
    margin = math.inf
    props = []
    for a in coords:
        for b in coords:
            d = ref_kl(maps[a * r + b][None], maps)
            margin = min(margin, (d - taus[0]).abs().min().item())
            props.append(maps[d < taus[0]].mean(0))
    for tau in taus[1:]:
        matched, merged = set(), []
        for i, p in enumerate(props):
            if i in matched:
                continue
            matched.add(i)
            d = ref_kl(p[None], torch.stack(props))  # this proposal against all, matched ones included
            margin = min(margin, (d - tau).abs().min().item())
            members = torch.nonzero(d < tau).flatten().tolist()
            matched.update(members)
            merged.append(torch.stack([props[j] for j in members]).mean(0))
        props = merged
    stack = torch.stack(props).view(1, -1, r, r)
    up = F.interpolate(stack, size=(out_size, out_size), mode="bilinear", align_corners=False)
    winner = up[0].argmax(0)
    relabel = {int(v): k for k, v in enumerate(sorted(set(winner.flatten().tolist())))}
    return winner.apply_(lambda v: relabel[v]), margin


def ref_aggregate(layers: dict[str, torch.Tensor], out_res: int, weights: dict[int, float]) -> torch.Tensor:
    """Per-map F.interpolate in float64, nearest query tiling, weighted sum -> (R, R, R, R)."""
    by_res: dict[int, list[torch.Tensor]] = {}
    for m in layers.values():
        by_res.setdefault(math.isqrt(m.shape[0]), []).append(m.double())
    out = torch.zeros(out_res, out_res, out_res, out_res, dtype=torch.float64)
    total = sum(weights[r] for r in by_res)
    for r, ms in by_res.items():
        keys = torch.stack(ms).mean(0).view(r * r, 1, r, r)
        keys = torch.cat([F.interpolate(k[None], size=(out_res, out_res), mode="bilinear",
                                        align_corners=False)[0] for k in keys])
        keys = keys / keys.sum((1, 2), keepdim=True)  # (r*r, R, R)
        queries = keys.view(r, r, -1).permute(2, 0, 1)[None]  # (1, R*R, r, r)
        tiled = F.interpolate(queries, size=(out_res, out_res), mode="nearest")[0].permute(1, 2, 0)
        out += weights[r] / total * tiled.reshape(out_res, out_res, out_res, out_res)
    return out


# ---------------------------------------------------------------- inputs


def partition(r: int, k: int, seed: int) -> torch.Tensor:
    """(r, r) long Voronoi partition into k regions."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(k, 2, generator=g, dtype=torch.float64) * r
    yy, xx = torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij")
    pix = torch.stack([yy, xx], -1).reshape(-1, 1, 2).double()
    return ((pix - centres) ** 2).sum(-1).argmin(1).view(r, r)


def planted(region: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """(N, N) float64 rows: uniform over the query's region, mixed per pixel with Dirichlet(1) noise."""
    g = torch.Generator().manual_seed(seed)
    flat = region.flatten()
    same = (flat[:, None] == flat[None, :]).double()
    base = same / same.sum(1, keepdim=True)
    dirichlet = -torch.rand(flat.numel(), flat.numel(), generator=g, dtype=torch.float64).log()
    dirichlet /= dirichlet.sum(1, keepdim=True)
    mix = noise * torch.rand(flat.numel(), 1, generator=g, dtype=torch.float64)
    return (1 - mix) * base + mix * dirichlet


def random_maps(r: int, seed: int) -> torch.Tensor:
    """(r*r, r*r) float32 row-stochastic maps: softmax of random logits."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(r * r, r * r, generator=g).softmax(-1)


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when two label maps are equal up to renaming labels."""
    pairs = set(zip(a.flatten().tolist(), b.flatten().tolist(), strict=True))
    return len(pairs) == len(a.unique()) == len(b.unique())


# ---------------------------------------------------------------- equivalence with the reference


@pytest.mark.parametrize(("seed", "taus", "m", "out_size"), [
    (0, [1.1, 1.1, 1.1], 4, 32),
    (1, [0.6, 0.9, 1.2], 8, 16),
    (2, [0.8, 1.0], 5, 40),
])
def test_fast_path_matches_float64_reference(seed: int, taus: list[float], m: int, out_size: int) -> None:
    r = 16
    agg = planted(partition(r, 6, seed), noise=0.8, seed=seed).view(r, r, r, r)
    expected, margin = ref_segment(agg, taus, m, out_size)
    assert margin > 1e-4, "test case is borderline: float32 rounding could flip a comparison"
    got = diffseg.segment(agg.float(), kl_threshold=taus, num_points=m, iterations=len(taus),
                          out_size=out_size)
    assert got.dtype == torch.long and got.shape == (out_size, out_size)
    assert torch.equal(got, expected)


def test_symmetric_kl_matches_direct_formula() -> None:
    p, q = random_maps(4, 0)[:5].double(), random_maps(4, 1).double()
    d = diffseg.symmetric_kl(p, q)
    assert d.shape == (5, 16)
    assert torch.allclose(d, ref_kl(p[:, None], q[None]), atol=1e-12)
    assert torch.allclose(diffseg.symmetric_kl(q, q).diagonal(), torch.zeros(16, dtype=q.dtype), atol=1e-12)


def test_greedy_pass_compares_against_matched_proposals() -> None:
    # Chain a~b~c with a, c far apart: b is taken by a's group yet joins c's group again (official quirk).
    a, b, c = torch.tensor([[0.8, 0.1, 0.1], [0.45, 0.1, 0.45], [0.1, 0.1, 0.8]]).double()
    props = torch.stack([a, b, c])
    d = diffseg.symmetric_kl(props, props)
    tau = 0.5
    assert d[0, 1] < tau and d[1, 2] < tau and d[0, 2] > tau
    merged = diffseg.merge_greedy(props, tau)
    assert torch.allclose(merged, torch.stack([(a + b) / 2, (b + c) / 2]))


def test_anchor_grid_matches_official_and_covers_full_grid() -> None:
    g = diffseg.anchor_grid(64, 16)
    assert g.shape == (256, 2)
    assert g[:16, 1].tolist() == list(range(1, 62, 4)) and torch.equal(g[0], torch.tensor([1, 1]))
    assert len({tuple(p) for p in diffseg.anchor_grid(8, 8).tolist()}) == 64


# ---------------------------------------------------------------- planted structure


@pytest.mark.parametrize("out_size", [16, 32])
@pytest.mark.parametrize("split", ["halves", "quadrants", "stripes3"])
def test_planted_partition_is_recovered(split: str, out_size: int) -> None:
    r = 16
    yy, xx = torch.meshgrid(torch.arange(r), torch.arange(r), indexing="ij")
    region = {"halves": xx >= r // 2, "quadrants": (yy >= r // 2) * 2 + (xx >= r // 2),
              "stripes3": (yy * 3) // r}[split].long()
    agg = planted(region, noise=0.2, seed=0).float().view(r, r, r, r)
    labels = diffseg.segment(agg, num_points=4, out_size=out_size)
    truth = region.repeat_interleave(out_size // r, 0).repeat_interleave(out_size // r, 1)
    assert same_partition(labels, truth) and labels.max() == region.max()


def test_stages_shrink_and_refine_keeps_partition() -> None:
    r = 16
    region = partition(r, 3, seed=4)
    agg = planted(region, noise=0.2, seed=1).float().view(r, r, r, r)
    stages = diffseg.proposals(agg, kl_threshold=1.1, num_points=4, iterations=3)
    assert [len(s) for s in stages][0] == 16 and len(stages[-1]) == 3
    assert all(len(a) >= len(b) for a, b in zip(stages, stages[1:], strict=False))
    assert all(torch.allclose(s.sum((1, 2)), torch.ones(len(s))) for s in stages)
    assert same_partition(diffseg.segment(agg, num_points=4, refine=True, out_size=r), region)


def test_single_iteration_and_per_iteration_thresholds() -> None:
    r = 16
    agg = planted(partition(r, 4, seed=3), noise=0.5, seed=3).float().view(r, r, r, r)
    one = diffseg.proposals(agg, kl_threshold=[1.0], num_points=4, iterations=1)
    assert len(one) == 1 and one[0].shape == (16, r, r)
    listed = diffseg.segment(agg, kl_threshold=[1.1, 1.1, 1.1], num_points=4, out_size=r)
    assert torch.equal(listed, diffseg.segment(agg, kl_threshold=1.1, num_points=4, out_size=r))


# ---------------------------------------------------------------- aggregate


def mixed_layers() -> dict[str, torch.Tensor]:
    return {"down16a": random_maps(16, 0), "down16b": random_maps(16, 1), "mid8": random_maps(8, 2),
            "up4": random_maps(4, 3)}


def test_aggregate_shapes_sums_and_reference() -> None:
    layers = mixed_layers()
    agg = diffseg.aggregate(layers)
    assert agg.shape == (16, 16, 16, 16) and agg.dtype == torch.float32
    assert torch.allclose(agg.sum((2, 3)), torch.ones(16, 16), atol=1e-5)
    expected = ref_aggregate(layers, 16, {16: 16, 8: 8, 4: 4})
    assert torch.allclose(agg.double(), expected, atol=1e-7)


def test_aggregate_non_divisible_out_res_matches_reference() -> None:
    layers = {"a": random_maps(6, 0), "b": random_maps(4, 1)}
    agg = diffseg.aggregate(layers, out_res=9)
    assert torch.allclose(agg.double(), ref_aggregate(layers, 9, {6: 6, 4: 4}), atol=1e-7)


def test_aggregate_weights_proportional_to_resolution() -> None:
    layers = mixed_layers()
    alone = {r: diffseg.aggregate({k: v for k, v in layers.items() if math.isqrt(v.shape[0]) == r},
                                  out_res=16) for r in (16, 8, 4)}
    # Linear combination of the per-resolution aggregates, weights r / (16 + 8 + 4).
    assert torch.allclose(diffseg.aggregate(layers), (16 * alone[16] + 8 * alone[8] + 4 * alone[4]) / 28,
                          atol=1e-7)
    custom = diffseg.aggregate(layers, weights={16: 1.0, 8: 0.0, 4: 3.0})
    assert torch.allclose(custom, (alone[16] + 3 * alone[4]) / 4, atol=1e-7)
    # Layers of one resolution are averaged.
    pair = diffseg.aggregate({"a": layers["down16a"], "b": layers["down16b"]})
    assert torch.allclose(pair, diffseg.aggregate({"m": (layers["down16a"] + layers["down16b"]) / 2}),
                          atol=1e-7)


# ---------------------------------------------------------------- label_segments


def test_label_segments_mean_vote() -> None:
    labels = torch.zeros(8, 8, dtype=torch.long)
    labels[:, 4:] = 1
    attn = torch.full((4, 4, 5), 0.1)
    attn[:, :2, 2] = 0.6  # "cat" (token 2) fills the left half
    attn[:, 2:, 3] = 0.6  # "dog" (token 3) fills the right half
    tokens = {"cat": 2, "dog": 3}
    assert diffseg.label_segments(labels, attn, tokens) == {0: "cat", 1: "dog"}
    assert diffseg.label_segments(labels, attn.reshape(16, 5), tokens) == {0: "cat", 1: "dog"}
    with pytest.raises(ValueError, match="tokens"):
        diffseg.label_segments(labels, attn, {"cat": 5})


# ---------------------------------------------------------------- bad inputs


def good_agg() -> torch.Tensor:
    return random_maps(8, 0).view(8, 8, 8, 8)


def corrupt(kind: str) -> torch.Tensor:
    a = good_agg().clone()
    if kind == "nan":
        a[0, 0, 0, 0] = math.nan
    elif kind == "inf":
        a[1, 2, 3, 4] = math.inf
    elif kind == "negative":
        a[0, 0, 0, 0], a[0, 0, 0, 1] = -0.01, a[0, 0, 0, 1] + 0.01 + a[0, 0, 0, 0]
    elif kind == "unnormalised":
        a = a * 2
    elif kind == "non_square":
        a = a[..., :7]
    return a


@pytest.mark.parametrize("kind", ["nan", "inf", "negative", "unnormalised", "non_square"])
def test_bad_aggregated_maps(kind: str) -> None:
    with pytest.raises(ValueError, match="aggregated"):
        diffseg.segment(corrupt(kind), num_points=4)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"kl_threshold": 0.0}, "kl_threshold"),
    ({"kl_threshold": -1.0}, "kl_threshold"),
    ({"kl_threshold": math.nan}, "kl_threshold"),
    ({"kl_threshold": [1.0, math.nan, 1.0]}, "kl_threshold"),
    ({"kl_threshold": [1.0, 1.0]}, "kl_threshold"),
    ({"num_points": 9}, "num_points"),
    ({"num_points": 0}, "num_points"),
    ({"iterations": 0}, "iterations"),
    ({"out_size": 0}, "out_size"),
])
def test_bad_segment_arguments(kwargs: dict, name: str) -> None:
    args = {"num_points": 4} | kwargs
    with pytest.raises(ValueError, match=name):
        diffseg.segment(good_agg(), **args)


@pytest.mark.parametrize("kind", ["non_square", "not_a_square_number", "nan", "negative", "unnormalised",
                                  "empty"])
def test_bad_layer_maps(kind: str) -> None:
    m = random_maps(4, 0)
    bad = {"non_square": m[:, :8], "not_a_square_number": random_maps(4, 0)[:15, :15].softmax(-1),
           "nan": m.clone().index_fill_(0, torch.tensor([3]), math.nan), "negative": m - m.mean(),
           "unnormalised": m * 3}
    with pytest.raises(ValueError, match="maps"):
        diffseg.aggregate({} if kind == "empty" else {"layer": bad[kind]})


def test_bad_weights_and_out_res() -> None:
    with pytest.raises(ValueError, match="weights"):
        diffseg.aggregate(mixed_layers(), weights={16: 1.0, 8: 1.0})
    with pytest.raises(ValueError, match="out_res"):
        diffseg.aggregate(mixed_layers(), out_res=0)


def test_zsnb_segment_takes_noise_seed_from_params(organism, organism_random, scene_image) -> None:
    import zsnb
    from zsnb import registry

    t, p = 300, registry.params("diffseg", organism_random, num_points=8).record
    for seed in (7, 8):
        labels = zsnb.segment("diffseg", organism_random, scene_image, timestep=t, noise="seeded", seed=seed,
                              num_points=8)
        cap = zsnb.capture(organism_random, scene_image, (t,), noise="seeded", seed=seed)
        ref = diffseg.segment(diffseg.aggregate(cap.self_attention(t)), p.kl_threshold, num_points=8,
                              iterations=p.iterations, out_size=scene_image.shape[-1])
        assert labels.shape == scene_image.shape[-2:] and torch.equal(labels, ref)
    a, b = (zsnb.segment("diffseg", organism, scene_image, timestep=500, noise="seeded", seed=s, kl_threshold=0.05)
            for s in (7, 8))
    assert not torch.equal(a, b)  # the seed reaches the noise


def test_numpy_inputs_are_accepted() -> None:
    layers = mixed_layers()
    agg = diffseg.aggregate({k: v.numpy() for k, v in layers.items()})
    torch.testing.assert_close(agg, diffseg.aggregate(layers))
    assert torch.equal(diffseg.segment(agg.numpy(), 1.1, 2, 2, out_size=(5, 7)), diffseg.segment(agg, 1.1, 2, 2,
                                                                                              out_size=(5, 7)))
    with pytest.raises(ValueError, match="numpy"):
        diffseg.segment([[0.5]])
