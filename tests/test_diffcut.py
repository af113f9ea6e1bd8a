"""Tests for zsnb.diffcut and zsnb.pamr: equivalence with a plain reference of the published steps,
planted-segment recovery, the guards the official code lacks, and input validation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from zsnb import diffcut
from zsnb.pamr import pamr

pytestmark = pytest.mark.usefixtures("one_thread")


def planted(side: int = 16, k: int = 4, channels: int = 32, noise: float = 0.4, seed: int = 0,
            centres: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(side, side, C) features and (side, side) labels: Voronoi cells of k random sites, centre + noise."""
    g = torch.Generator().manual_seed(seed)
    sites = torch.rand(k, 2, generator=g) * side
    pix = torch.cartesian_prod(torch.arange(side) + 0.5, torch.arange(side) + 0.5)  # (side*side, 2)
    truth = torch.cdist(pix, sites).argmin(1)
    if centres is None:
        centres = torch.randn(k, channels, generator=g)
    feats = centres[truth] + noise * torch.randn(side * side, centres.shape[1], generator=g)
    return feats.reshape(side, side, -1), truth.reshape(side, side)


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of tokens on which two label maps agree after one-to-one label matching."""
    from scipy.optimize import linear_sum_assignment

    _, ia = a.flatten().unique(return_inverse=True)
    _, ib = b.flatten().unique(return_inverse=True)
    table = np.zeros((int(ia.max()) + 1, int(ib.max()) + 1))
    np.add.at(table, (ia.numpy(), ib.numpy()), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / a.numel())


def reference_ncut(features: torch.Tensor, tau: float = 0.5, alpha: float = 10.0, drop_zero_rows: bool = True,
                   dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The published steps, plainly: full-size painting, dense eigh of the normalised Laplacian, a loop
    over 100 thresholds, leaf partition. drop_zero_rows=True keeps the official rule that drops every
    node whose masked affinity row holds an exact 0; False keeps just the unexplored nodes. The official
    code runs in float32; float64 (default) keeps ** alpha from underflowing."""
    grid = features.shape[:-1]
    f = F.normalize(features.reshape(-1, features.shape[-1]).to(dtype), dim=1)
    n = len(f)
    cos = f @ f.T
    aff0 = (((cos - cos.min()) / (cos.max() - cos.min())) ** alpha).double()
    masks: list[torch.Tensor] = []

    def visit(aff: torch.Tensor, painting: torch.Tensor, mask: torch.Tensor, level: int) -> None:
        painting = ((painting + mask) > 0).double()
        aff = aff * (1 - torch.outer(painting, painting))
        if level == 0:
            keep = torch.arange(n)
        elif drop_zero_rows:
            keep = torch.nonzero(~(aff == 0).any(1)).flatten()
        else:
            keep = torch.nonzero(painting == 0).flatten()
        a = aff[keep][:, keep]
        if len(keep) <= 1:
            return
        d = a.sum(1)
        dm, dis = torch.diag(d), torch.diag(d ** -0.5)
        v = dis @ torch.linalg.eigh(dis @ (dm - a) @ dis).eigenvectors[:, 1]
        v = v * torch.sign(v[v.abs().argmax()])
        best, best_x = float("inf"), None
        for t in torch.linspace(0.99 * float(v.min()), 0.99 * float(v.max()), 100, dtype=torch.float64):
            x = 2 * (v > t).double() - 1
            k = (d * (x > 0)).sum() / d.sum()
            b = k / (1 - k)
            y = (1 + x) - b * (1 - x)
            value = float(y @ (dm - a) @ y / (y @ dm @ y))
            if value < best:
                best, best_x = value, (x > 0).double()
        if best < tau:
            full = torch.zeros(n, dtype=torch.float64)
            full[keep] = best_x
            masks.append(full)
            visit(aff, painting, 1 - full, level + 1)  # paint the "0" side: explore the "1" side first
            visit(aff, painting, full, level + 1)

    visit(aff0, torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64), 0)
    if not masks:
        return torch.zeros(grid, dtype=torch.long)
    codes = torch.zeros(n, dtype=torch.float64)
    for m in masks:  # the published assembly: each stored mask weighs more than all earlier ones together
        codes += (codes.max() + 1) * m
    return torch.unique(codes, return_inverse=True)[1].reshape(grid)


@pytest.mark.parametrize("solver", ["dense", "lanczos"])
@pytest.mark.parametrize("k,seed", [(3, 0), (5, 1), (6, 2)])
def test_matches_reference(k: int, seed: int, solver: str) -> None:
    feats, _ = planted(side=12, k=k, seed=seed)
    ours = diffcut.recursive_ncut(feats, solver=solver)
    assert torch.equal(ours, reference_ncut(feats, drop_zero_rows=False))  # same graph: same labels
    assert agreement(ours, reference_ncut(feats)) >= 0.98  # official rule loses the global-min pair


def test_matches_official_rule_on_larger_grid() -> None:
    feats, _ = planted(side=16, k=5, seed=3)
    assert agreement(diffcut.recursive_ncut(feats), reference_ncut(feats)) >= 0.99


def test_final_labels_follow_official_numbering() -> None:
    """Three segments meet where the 3 x 3 median picks the middle-numbered label: the final map depends on
    the numbering, and it must be the official one (visiting order would give another partition)."""
    layout = torch.zeros(6, 6, dtype=torch.long)
    layout[:3, 3:], layout[3:, 3:] = 1, 2  # left half | top right / bottom right
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(3, 16, generator=g)[layout] + 0.05 * torch.randn(6, 6, 16, generator=g)
    official = reference_ncut(feats, drop_zero_rows=False)
    expected = torch.from_numpy(scipy.ndimage.median_filter(official.numpy(), 3))
    ours = diffcut.segment(feats, torch.rand(3, 6, 6), min_size=1, pamr_iterations=0)
    assert torch.equal(ours, expected)
    _, nodes = diffcut.recursive_ncut_tree(feats, min_size=1)
    visiting = torch.empty_like(official)
    for i, leaf in enumerate(n for n in nodes if n.stop != "split"):
        visiting[leaf.mask] = i
    assert agreement(torch.from_numpy(scipy.ndimage.median_filter(visiting.numpy(), 3)), expected) < 1


def test_leaf_labels_rank_official_codes() -> None:
    feats, _ = planted(side=16, k=6, seed=6)
    _, nodes = diffcut.recursive_ncut_tree(feats)
    splits = [n for n in nodes if n.stop == "split"]
    # a leaf's code: 2**j for each j-th split whose "1" child (the next node, pre-order) holds the leaf
    codes = {n.index: sum(2**j for j, s in enumerate(splits) if bool(nodes[s.index + 1].mask[n.mask].all()))
             for n in nodes if n.label is not None}
    assert sorted(codes, key=codes.__getitem__) == sorted(codes, key=lambda i: nodes[i].label)
    assert len(splits) >= 3 and [n.label for n in nodes if n.label is not None] != list(range(len(codes)))


def test_threshold_search_equals_shi_malik_loop() -> None:
    feats, _ = planted(side=10, k=3, seed=4, noise=1.0)
    w = diffcut.affinity(feats)
    v = diffcut.fiedler(w)
    part, value = diffcut.best_threshold(v, w)
    d = w.sum(1)
    x = 2 * part.double() - 1
    b = (d * (x > 0)).sum() / (d * (x < 0)).sum()
    y = (1 + x) - b * (1 - x)
    assert value == pytest.approx(float(y @ (torch.diag(d) - w) @ y / (y @ torch.diag(d) @ y)), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_planted_segments(seed: int) -> None:
    feats, truth = planted(side=16, k=5, seed=seed)
    assert agreement(diffcut.recursive_ncut(feats), truth) == 1.0


def test_flat_features_accepted() -> None:
    feats, truth = planted(side=12, k=3, seed=5)
    labels = diffcut.recursive_ncut(feats.reshape(144, -1))
    assert labels.shape == (144,) and agreement(labels, truth.flatten()) == 1.0


def test_all_equal_features_give_one_segment() -> None:
    labels, nodes = diffcut.recursive_ncut_tree(torch.ones(8, 8, 16) * 0.3, tau=0.99)
    assert labels.unique().tolist() == [0]
    assert len(nodes) == 1 and nodes[0].stop == "constant"
    assert torch.all(diffcut.affinity(torch.ones(5, 4)) == 1)


def test_tree_consistent_with_labels() -> None:
    feats, _ = planted(side=16, k=6, seed=6)
    labels, nodes = diffcut.recursive_ncut_tree(feats)
    assert nodes[0].parent is None and nodes[0].mask.all()
    leaves = [n for n in nodes if n.label is not None]
    assert sorted(n.label for n in leaves) == list(range(len(leaves))) == labels.unique().tolist()
    for node in nodes:
        children = [c for c in nodes if c.parent == node.index]
        if node.stop == "split":
            assert node.ncut < 0.5 and node.label is None and [c.side for c in children] == [1, 0]
            assert children[0].index == node.index + 1  # pre-order, "1" side first
            assert torch.equal(children[0].mask | children[1].mask, node.mask)
            assert not (children[0].mask & children[1].mask).any()
        else:
            assert not children and torch.all(labels[node.mask] == node.label)
            assert node.stop in diffcut.STOPS
            assert node.stop != "ncut >= tau" or node.ncut >= 0.5


def test_underflowing_affinities_do_not_splinter() -> None:
    # Opposite centres have cosine near -1, the global minimum, so their affinity ** alpha underflows to 0
    # (float32 at alpha 60, float64 at alpha 200). The official rule then drops every node at level 1.
    e = torch.eye(32)
    feats, truth = planted(side=16, k=4, seed=7, noise=0.02, centres=torch.stack([e[0], -e[0], e[1], -e[1]]))
    for alpha in (10.0, 60.0, 200.0):
        assert agreement(diffcut.recursive_ncut(feats, alpha=alpha), truth) == 1.0
    assert (diffcut.affinity(feats, 200.0) == 0).float().mean() > 0.2
    assert reference_ncut(feats, alpha=60.0, dtype=torch.float32).unique().numel() != 4


def test_large_alpha_on_noisy_planted_segments() -> None:
    feats, truth = planted(side=16, k=4, seed=8, noise=0.2)
    labels = diffcut.recursive_ncut(feats, alpha=60.0)
    assert agreement(labels, truth) == 1.0


def smooth_field(side: int = 16, channels: int = 32, seed: int = 0) -> torch.Tensor:
    """(side, side, C) blurred white noise: spatially smooth, no true segments."""
    x = torch.randn(1, channels, side, side, generator=torch.Generator().manual_seed(seed))
    for _ in range(4):
        x = F.avg_pool2d(F.pad(x, [1] * 4, mode="reflect"), 3, 1)
    return x[0].permute(1, 2, 0)


@pytest.mark.parametrize("n", [40, 200])  # dense and Lanczos
def test_spectral_gap_of_a_chain_stays_above_a_quarter(n: int) -> None:
    w = torch.diag(torch.ones(n - 1, dtype=torch.float64), 1)
    assert 0.25 < diffcut.spectral_gap(w + w.T + torch.eye(n, dtype=torch.float64)) < 0.251


def test_spectral_gap_separates_groups_from_a_continuum() -> None:
    feats, _ = planted(side=16, k=5, seed=1)
    assert diffcut.spectral_gap(diffcut.affinity(feats)) < 0.01
    assert diffcut.spectral_gap(diffcut.affinity(smooth_field())) > diffcut.CHAIN_GAP
    two = torch.block_diag(torch.ones(5, 5), torch.ones(6, 6)).double()  # disconnected: lambda_2 = 0
    assert diffcut.spectral_gap(two) < 1e-12
    many = torch.block_diag(*[torch.ones(3, 3)] * 10).double()  # more pieces than eigenvalues examined
    assert diffcut.spectral_gap(many) == 0.0


def test_gap_stop_keeps_a_smooth_field_whole() -> None:
    field = smooth_field()
    assert diffcut.recursive_ncut(field).max() >= 10  # official rule: splinters down to the guards
    labels, nodes = diffcut.recursive_ncut_tree(field, gap=diffcut.CHAIN_GAP)
    assert labels.unique().tolist() == [0] and nodes[0].stop == "no spectral gap" and nodes[0].ncut < 0.5


def test_gap_stop_recovers_regions_under_smooth_variation() -> None:
    feats, truth = planted(side=16, k=5, seed=0)
    field = smooth_field()
    feats = feats + 0.5 * feats.std() * field / field.std()
    assert agreement(diffcut.recursive_ncut(feats), truth) < 0.95
    assert agreement(diffcut.recursive_ncut_tree(feats, gap=diffcut.CHAIN_GAP)[0], truth) == 1.0


def test_depth_and_size_bounded_on_random_features() -> None:
    feats = torch.randn(16, 16, 32, generator=torch.Generator().manual_seed(9))
    labels, nodes = diffcut.recursive_ncut_tree(feats, tau=0.99, max_depth=4, min_size=4)
    assert max(n.depth for n in nodes) <= 4 and labels.unique().numel() <= 2 ** 4
    assert min(int(n.mask.sum()) for n in nodes if n.label is not None) >= 4
    labels, nodes = diffcut.recursive_ncut_tree(feats, tau=1.9, min_size=16)
    assert max(n.depth for n in nodes) <= diffcut.MAX_DEPTH
    assert min(int(n.mask.sum()) for n in nodes if n.label is not None) >= 16


def test_eigensolver_failure_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    feats, truth = planted(side=12, k=3, seed=10)
    real = torch.linalg.eigh
    calls = {"n": 0}

    def flaky(m: torch.Tensor) -> torch.return_types.linalg_eigh:
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.linalg.LinAlgError("simulated failure")
        return real(m)

    monkeypatch.setattr(torch.linalg, "eigh", flaky)
    assert agreement(diffcut.recursive_ncut(feats, solver="dense"), truth) == 1.0  # jittered retry

    def broken(m: torch.Tensor) -> torch.return_types.linalg_eigh:
        raise torch.linalg.LinAlgError("simulated failure")

    monkeypatch.setattr(torch.linalg, "eigh", broken)
    with pytest.warns(RuntimeWarning, match="eigensolvers failed"):
        labels, nodes = diffcut.recursive_ncut_tree(feats, solver="dense")
    assert labels.unique().tolist() == [0] and nodes[0].stop == "eigensolver failed"


def test_assign_concepts_shape_and_labels() -> None:
    feats, truth = planted(side=8, k=3, seed=11, noise=0.1)
    labels = truth * 5 + 2  # non-contiguous ids survive
    out = diffcut.assign_concepts(labels, feats, 32)
    assert out.shape == (32, 32) and out.dtype == torch.long
    assert set(out.unique().tolist()) <= set(labels.unique().tolist())
    # official order: upsample the C feature maps, then dot products; same argmax
    unit = F.normalize(feats, dim=-1)
    ids = labels.unique()
    concepts = torch.stack([unit[labels == i].mean(0) for i in ids])
    up = F.interpolate(unit.permute(2, 0, 1)[None], size=(32, 32), mode="bilinear")[0]
    official = ids[torch.einsum("chw,kc->khw", up, concepts).argmax(0)]
    assert (out == official).float().mean() >= 0.999
    assert diffcut.assign_concepts(labels, feats, (16, 24)).shape == (16, 24)


def test_segment_composes() -> None:
    feats, truth = planted(side=8, k=2, seed=12, noise=0.1)
    image = truth.float()[None].repeat(3, 1, 1)  # two flat colours on the segments
    image = F.interpolate(image[None], size=(32, 32), mode="nearest")[0]
    out = diffcut.segment(feats, image=image)
    assert out.shape == (32, 32) and out.unique().numel() == 2
    assert diffcut.segment(feats, refine=False).shape == (8, 8)


def reference_pamr(image: torch.Tensor, labels: torch.Tensor, iterations: int,
                   dilations: tuple[int, ...]) -> torch.Tensor:
    """PAMR written with 3 x 3 dilated convolutions, as the published module, then argmax and median."""
    from scipy.ndimage import median_filter

    def taps(x: torch.Tensor, centre: bool) -> torch.Tensor:  # (K, H, W) -> (K, P, H, W)
        kernels = torch.eye(9).reshape(9, 1, 3, 3)
        if not centre:
            kernels = kernels[[0, 1, 2, 3, 5, 6, 7, 8]]
        out = [F.conv2d(F.pad(x[:, None], [d] * 4, mode="replicate"), kernels, dilation=d) for d in dilations]
        return torch.cat(out, 1)

    ids = labels.unique()
    masks = (labels[None] == ids[:, None, None]).float()
    std = taps(image, True).std(1, keepdim=True)
    logits = -(image[:, None] - taps(image, False)).abs() / (1e-8 + 0.1 * std)
    weights = logits.mean(0).softmax(0)
    for _ in range(iterations):
        masks = (taps(masks, False) * weights).sum(1)
    return ids[torch.from_numpy(median_filter(masks.argmax(0).numpy(), size=3))]


def two_tone(size: int = 24, edge: int = 12, seed: int = 13) -> torch.Tensor:
    """(3, size, size) image: reddish left of column `edge`, bluish right, mild noise."""
    g = torch.Generator().manual_seed(seed)
    image = torch.empty(3, size, size)
    image[:, :, :edge] = torch.tensor([0.8, 0.2, 0.2])[:, None, None]
    image[:, :, edge:] = torch.tensor([0.2, 0.3, 0.8])[:, None, None]
    return (image + 0.02 * torch.randn(image.shape, generator=g)).clamp(0, 1)


def test_pamr_matches_convolution_reference() -> None:
    image = torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(14))
    labels = (torch.arange(20)[None, :] // 7 + 3 * (torch.arange(20)[:, None] // 9)).long()
    for dilations in ((1,), (1, 2, 4, 8)):
        assert torch.equal(pamr(image, labels, 5, dilations), reference_pamr(image, labels, 5, dilations))


def test_pamr_keeps_aligned_and_snaps_shifted_boundary() -> None:
    image = two_tone()
    cols = torch.arange(24)[None, :].expand(24, 24)
    aligned = (cols >= 12).long() + 4
    assert torch.equal(pamr(image, aligned), aligned)
    shifted = (cols >= 15).long() + 4
    refined = pamr(image, shifted)
    assert (refined != aligned).sum() < (shifted != aligned).sum() / 2
    assert set(refined.unique().tolist()) == {4, 5}


@pytest.mark.parametrize("call,name", [
    (lambda: diffcut.affinity(torch.tensor([[1.0, float("nan")], [0.0, 1.0]])), "features"),
    (lambda: diffcut.recursive_ncut(torch.full((4, 4, 3), float("inf"))), "features"),
    (lambda: diffcut.recursive_ncut(torch.ones(1, 1, 8)), "features"),
    (lambda: diffcut.recursive_ncut(torch.ones(8)), "features"),
    (lambda: diffcut.recursive_ncut(torch.rand(4, 4, 3), tau=0.0), "tau"),
    (lambda: diffcut.recursive_ncut(torch.rand(4, 4, 3), tau=-1.0), "tau"),
    (lambda: diffcut.recursive_ncut(torch.rand(4, 4, 3), alpha=0), "alpha"),
    (lambda: diffcut.affinity(torch.rand(4, 3), alpha=float("nan")), "alpha"),
    (lambda: diffcut.recursive_ncut(torch.rand(4, 4, 3), min_size=0), "min_size"),
    (lambda: diffcut.recursive_ncut_tree(torch.rand(4, 4, 3), gap=0.0), "gap"),
    (lambda: diffcut.fiedler(torch.ones(3, 3), solver="qr"), "solver"),
    (lambda: diffcut.assign_concepts(torch.zeros(3, 3, dtype=torch.long), torch.rand(4, 4, 2), 8), "labels"),
    (lambda: diffcut.assign_concepts(torch.zeros(4, 4, dtype=torch.long), torch.rand(4, 4, 2), 0),
     "out_size"),
    (lambda: diffcut.segment(torch.rand(4, 4, 3)), "image"),
    (lambda: pamr(torch.rand(3, 8, 8), torch.zeros(8, 9, dtype=torch.long)), "labels"),
    (lambda: pamr(torch.rand(8, 8), torch.zeros(8, 8, dtype=torch.long)), "image"),
    (lambda: pamr(torch.full((3, 8, 8), float("nan")), torch.zeros(8, 8, dtype=torch.long)), "image"),
    (lambda: pamr(torch.rand(3, 8, 8), torch.zeros(8, 8, dtype=torch.long), iterations=-1), "iterations"),
    (lambda: pamr(torch.rand(3, 8, 8), torch.zeros(8, 8, dtype=torch.long), dilations=(0,)), "dilations"),
])
def test_bad_inputs_raise(call, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()


def test_the_registry_adaptor_reads_tap_from_params(organism_random, scene_image: torch.Tensor) -> None:
    import zsnb
    from zsnb import registry
    from zsnb.errors import UnknownNameError

    tap = organism_random.attention_layers("self")[16][0]  # a 16 x 16 encoder layer
    params = registry.params("diffcut", organism_random, tap=tap, out_size=None).record
    labels = zsnb.segment("diffcut", organism_random, scene_image, tap=tap, out_size=None)
    assert labels.shape == (32, 32) and labels.dtype == torch.long
    cap = zsnb.capture(organism_random, scene_image, timesteps=(params.timestep,), noise=params.noise,
                       seed=params.seed, attention=None, features=(tap,), stop_after="auto")
    assert cap.features(params.timestep, tap).shape[:2] == (16, 16)
    assert torch.equal(labels, registry.segment_capture("diffcut", cap, 0, params, (32, 32)))
    assert registry.segment_capture("diffcut", cap, 0, params.replace(out_size=64), (8, 8)).shape == (8, 8)
    small = registry.segment_capture("diffcut", cap, 0, params.replace(out_size=16), (16, 16))  # official: 128
    assert small.shape == (16, 16) and small.unique().numel() <= labels.unique().numel() + 1
    with pytest.raises(UnknownNameError, match="no_such_layer"):
        zsnb.segment("diffcut", organism_random, scene_image, tap="no_such_layer")


def test_tree_layout_and_drawing() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zsnb import ncut_viz

    feats, _ = planted(side=12, k=4, seed=15)
    labels, nodes = diffcut.recursive_ncut_tree(feats)
    pos = ncut_viz.tree_layout(nodes)
    leaves = [n for n in nodes if n.label is not None]  # nodes are in visiting order
    assert [pos[n.index][0] for n in leaves] == list(range(len(leaves)))  # visiting order, left to right
    for n in nodes:
        kids = [c for c in nodes if c.parent == n.index]
        assert pos[n.index][1] == -n.depth
        if kids:
            assert min(pos[c.index][0] for c in kids) < pos[n.index][0] < max(pos[c.index][0] for c in kids)
    fig, ax = plt.subplots()
    ncut_viz.draw_tree(ax, nodes)
    plt.close(fig)
