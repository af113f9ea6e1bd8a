"""The plotting style: GT-matched segment colours, shared scales, saved size, the timestep axis."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from zsnb import viz  # noqa: E402
from zsnb.errors import ZsnbError  # noqa: E402


@pytest.fixture(autouse=True)
def _style():
    with plt.rc_context():
        viz.use_style()
        yield
    plt.close("all")


def test_match_to_gt_gives_each_segment_its_gt_id_and_extra_ids_to_the_rest():
    gt = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 1],
                   [2, 2, 2, 2],
                   [2, 2, 2, 2]])
    pred = np.array([[7, 7, 3, 3],  # 7 covers GT 0, 3 covers GT 1, 5 covers GT 2 but for two stray pixels
                     [7, 7, 3, 3],
                     [5, 5, 5, 9],
                     [5, 5, 5, 4]])
    out = viz.match_to_gt(pred, gt)
    assert (out[pred == 7] == 0).all() and (out[pred == 3] == 1).all() and (out[pred == 5] == 2).all()
    extra = {int(out[pred == 9][0]), int(out[pred == 4][0])}
    assert extra == {3, 4}  # unmatched: new ids past the GT ones, one per segment
    colours = {viz.segment_colour(k) for k in np.unique(out)}
    assert len(colours) == 5  # five segments, five colours


def test_match_to_gt_leaves_a_segment_that_touches_no_free_class_unmatched():
    gt = np.array([[0, 0], [1, 1]])
    pred = np.array([[4, 5], [6, 6]])  # 4 and 5 both in GT 0: one of them wins it; the other must not take GT 1
    out = viz.match_to_gt(pred, gt)
    assert (out[pred == 6] == 1).all()
    assert sorted({int(out[0, 0]), int(out[0, 1])}) == [0, 2]


def test_match_to_gt_rejects_mismatched_shapes():
    with pytest.raises(ZsnbError, match="resize"):
        viz.match_to_gt(np.zeros((4, 4), int), np.zeros((8, 8), int))


def test_show_labels_with_gt_draws_matched_colours():
    gt = np.array([[0, 1], [2, 2]])
    pred = np.array([[5, 6], [8, 8]])
    fig, ax = plt.subplots()
    viz.show_labels(ax, pred, gt=gt)
    drawn = ax.get_images()[0].get_array()
    assert np.array_equal(drawn, gt)


def test_show_labels_over_an_image_outlines_without_blending():
    labels = torch.tensor([[0, 0, 1, 1]] * 4)
    fig, ax = plt.subplots()
    viz.show_labels(ax, labels, image=torch.rand(3, 8, 8))
    assert len(ax.get_images()) == 1  # only the image: no colour layer over it
    (edges,) = ax.collections
    assert len(edges.get_segments()) == 4  # 4 rows of one vertical edge between the two segments
    assert np.allclose(edges.get_segments()[0][:, 0], 3.5)  # at the image's pixel edge (labels at half size)


def test_share_scale_gives_all_maps_one_norm_and_one_colorbar():
    fig, axes = plt.subplots(1, 3)
    ims = [viz.show_map(ax, torch.rand(4, 4) * k) for k, ax in enumerate(axes, start=1)]
    assert ims[0].norm.vmax != ims[2].norm.vmax  # per-panel by default
    viz.share_scale(ims, "x")
    assert all(im.norm is ims[0].norm for im in ims)
    assert ims[0].norm.vmax == pytest.approx(max(float(im.get_array().max()) for im in ims))
    assert len(fig.axes) == 4  # the three maps and one colorbar


def test_show_query_row_shared_uses_multiples_of_uniform():
    fig, axes = plt.subplots(1, 3)
    maps = {4: torch.full((4, 4), 1 / 16), 2: torch.tensor([[1.0, 0], [0, 0]])}
    ims = viz.show_query_row(axes, torch.rand(3, 8, 8), maps, (0.5, 0.5), shared=True)
    assert np.allclose(ims[0].get_array(), 1.0)  # uniform attention reads 1 at every side
    assert ims[0].norm is ims[1].norm and (ims[0].norm.vmin, ims[0].norm.vmax) == (0.0, 4.0)


def test_saved_figure_has_the_style_dpi_and_size(tmp_path, monkeypatch):
    monkeypatch.setenv(viz.FIGURES_ENV, str(tmp_path))
    fig = plt.figure(figsize=(4, 2))
    fig.add_subplot().plot([0, 1])
    img = Image.open(viz.save(fig, "x"))
    assert img.info["dpi"][0] == pytest.approx(150, abs=0.1)
    assert 0.85 * 600 <= img.size[0] <= 600 and 0.85 * 300 <= img.size[1] <= 300  # tight bbox trims a little


def test_figures_of_another_backbone_or_random_weights_go_to_their_own_folder(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").touch()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(viz.FIGURES_ENV, raising=False)
    try:
        viz.use_figures_for("organism", "pretrained")
        assert viz.figures_dir() == tmp_path / "figures"
        viz.use_figures_for("organism", "random")
        assert viz.figures_dir() == tmp_path / "runs" / "figures" / "organism-random"
        viz.use_figures_for("vit-s", "pretrained")
        assert viz.figures_dir() == tmp_path / "runs" / "figures" / "vit-s-pretrained"
        monkeypatch.setenv(viz.FIGURES_ENV, str(tmp_path / "env"))
        assert viz.figures_dir() == tmp_path / "env"  # $ZSNB_FIGURES wins
    finally:
        viz.use_figures_for("organism", "pretrained")


def _sweep(ts: list[int]) -> dict:
    score = {k: 0.5 for k in ("segments", "miou_parts", "miou_objects")}
    score.update({f"{k}_se": 0.05 for k in list(score)}, gt_parts=6.0, gt_objects=3.0)
    row = {"entropy": {16: 0.9, 8: 0.8}, "diffseg": score, "diffcut": score}
    return {"none": {t: row for t in ts}, "seeded": {t: row for t in ts}}


def test_timestep_sweep_has_no_negative_tick_and_one_colour_per_side():
    ts = [0, 25, 50, 100, 200, 300, 500, 700]
    fig, axes = plt.subplots(2, 2)
    sweep = _sweep(ts)
    viz.plot_timestep_sweep(axes.flat, sweep, sweep["none"][0]["diffseg"])
    fig.canvas.draw()
    for ax in axes.flat:
        lo, hi = ax.get_xlim()
        shown = [tk for tk in ax.get_xticks() if lo <= tk <= hi]
        assert min(shown) == 0 and all(tk >= 0 for tk in shown)
        assert not any("−" in t.get_text() or "-" in t.get_text() for t in ax.get_xticklabels())
    lines = axes.flat[0].get_lines()
    by_mode = [[ln.get_color() for ln in lines if ln.get_linestyle() == ls] for ls in ("-", "--")]
    assert by_mode[0] == by_mode[1] and len(set(by_mode[0])) == 2  # same side, same colour, in both modes


def test_timestep_sweep_shifts_error_bars_apart():
    fig, axes = plt.subplots(2, 2)
    viz.plot_timestep_sweep(axes.flat, _sweep([0, 100]))
    fig.canvas.draw()
    xs = [ln.get_transform().transform(np.c_[ln.get_xdata(), ln.get_ydata()])[0, 0]
          for ln in axes.flat[1].get_lines() if ln.get_marker() == "o"]
    assert len(xs) == 4 and len({round(x, 3) for x in xs}) == 4  # four series, four x positions at t = 0


def test_share_scale_takes_a_grid_of_axes_and_a_power_scale():
    fig, axes = plt.subplots(2, 2)
    ims = [viz.show_map(ax, torch.rand(4, 4)) for ax in axes.flat]
    viz.share_scale(ims, "x", axes, gamma=0.5)
    assert all(im.norm is ims[0].norm for im in ims) and ims[0].norm.gamma == 0.5


def test_share_scale_on_fixed_limits_without_a_colorbar_scales_one_panel():
    fig, axes = plt.subplots(1, 2)
    a, b = (viz.show_map(ax, torch.rand(4, 4) * 0.5) for ax in axes)
    assert viz.share_scale([a], limits=(-1, 1), colorbar=False) is None
    assert (a.norm.vmin, a.norm.vmax) == (-1, 1) and b.norm is not a.norm  # the other panel keeps its own
    assert len(fig.axes) == 2  # no colorbar


def test_show_noising_draws_what_the_seeded_capture_feeds_the_unet(organism):
    from zsnb import world
    from zsnb.extract import seeded_noise
    from zsnb.protocol import NOISE_SEED

    image = torch.from_numpy(world.scene(1).image).permute(2, 0, 1)
    fig, axes = plt.subplots(1, 3)
    viz.show_noising(axes, organism.scheduler, image, [0, 500, 500], seed=NOISE_SEED)
    viz.show_noising(axes[2:], organism.scheduler, image, [500], seed=NOISE_SEED + 1)
    drawn = [ax.get_images()[-1].get_array() for ax in axes]
    x0 = organism.encode_image(image[None])[0]  # the capture's input before noise: pixels in [-1, 1]
    for t, shown in zip((0, 500), drawn, strict=False):
        ab = organism.scheduler.alphas_cumprod[t].double()
        expect = (ab.sqrt() * x0 + (1 - ab).sqrt() * seeded_noise(image.shape, NOISE_SEED) + 1) / 2
        assert np.allclose(shown, expect.clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6)
    assert not np.allclose(drawn[0], image.permute(1, 2, 0).numpy(), atol=1e-3)  # the capture noises t = 0 too
    assert not np.allclose(drawn[1], drawn[2], atol=1e-3)  # another seed, another draw
    plt.close(fig)


def test_level_snr_falls_with_t():
    fig, ax = plt.subplots()
    ab = torch.linspace(0.99, 0.01, 1000)
    viz.plot_level_snr(ax, {"objects": 1.0, "parts": 0.1}, ab, [10, 500, 900])
    ys = [line.get_ydata() for line in ax.get_lines()[:2]]
    assert all(np.all(np.diff(y) < 0) for y in ys) and np.allclose(ys[0] / ys[1], 10)
    plt.close(fig)


def test_iou_by_area_plot_has_one_line_per_nonempty_bin():
    bins = lambda v: [{"lo": 0, "hi": 48, "n": 3, "iou": v, "se": 0.1},  # noqa: E731
                      {"lo": 48, "hi": 1 << 30, "n": 0, "iou": float("nan"), "se": float("nan")}]
    fig, ax = plt.subplots()
    viz.plot_iou_by_area(ax, {0: bins(0.5), 300: bins(0.2)}, lambda b: f"{b['lo']}-{b['hi']} px")
    assert len(ax.get_legend().get_texts()) == 1 and ax.get_legend().get_texts()[0].get_text() == "0-48 px (n 3)"
    plt.close(fig)
