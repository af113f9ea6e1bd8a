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


def test_show_labels_over_an_image_fills_translucent_segments_and_outlines_them():
    labels = torch.tensor([[0, 0, 1, 1]] * 4)
    fig, ax = plt.subplots()
    viz.show_labels(ax, labels, image=torch.rand(3, 8, 8))
    image, fill = ax.get_images()  # the image, then one colour layer over it
    under = image.get_array()
    assert np.allclose(under[..., 0], under[..., 1]) and np.allclose(under[..., 1], under[..., 2])  # in grey
    assert fill.get_alpha() == viz.SEGMENT_ALPHA and 0 < fill.get_alpha() < 1
    assert fill.get_extent() == [-0.5, 7.5, 7.5, -0.5]  # labels at half size cover the whole image
    (edges,) = ax.collections
    assert len(edges.get_segments()) == 4  # 4 rows of one vertical edge between the two segments
    assert np.allclose(edges.get_segments()[0][:, 0], 3.5)  # at the image's pixel edge (labels at half size)


def test_show_labels_alpha_zero_draws_outlines_only():
    fig, ax = plt.subplots()
    viz.show_labels(ax, torch.tensor([[0, 1]] * 2), image=torch.rand(3, 2, 2), alpha=0)
    assert len(ax.get_images()) == 1 and len(ax.collections) == 1
    assert not np.allclose(ax.get_images()[0].get_array()[..., 0], ax.get_images()[0].get_array()[..., 1])  # colour


def test_label_zero_is_grey_only_where_it_is_the_background():
    grey = viz.PALETTE[0]
    labels = np.array([[0, 1], [2, 3]])
    fig, axes = plt.subplots(1, 4)
    viz.show_labels(axes[0], labels)  # a flat map: the world's ground truth, id 0 its background
    viz.show_labels(axes[1], labels, image=torch.rand(3, 2, 2))  # unmatched segments over an image
    viz.show_labels(axes[2], labels, image=torch.rand(3, 2, 2), gt=labels)  # matched: 0 is the GT background
    viz.show_labels(axes[3], labels, background=False)
    drawn = [ax.get_images()[-1] for ax in axes]
    colour = [tuple(im.cmap(im.norm(im.get_array()))[0, 0, :3]) for im in drawn]
    assert np.allclose(colour[0], grey) and np.allclose(colour[2], grey)
    assert not np.allclose(colour[1], grey) and not np.allclose(colour[3], grey)
    assert viz.segment_colour(0, background=False) == tuple(colour[3])
    ids = viz._colour_index(np.arange(60))  # other ids wrap around the colours, never onto the grey
    assert ids[0] == 0 and (ids[1:] > 0).all()


def test_stages_keep_one_colour_per_region_across_iterations():
    agg = torch.zeros(4, 4, 4, 4)
    agg[:, :2, :, :2] = 1 / 8  # left half attends to the left half, right half to the right half
    agg[:, 2:, :, 2:] = 1 / 8
    from zsnb import diffseg
    stages = diffseg.proposals(agg, 0.5, 4, 2)
    fig, axes = plt.subplots(1, 2)
    viz.plot_stages(axes, stages, np.random.rand(8, 8, 3))
    fills = [ax.get_images()[1].get_array() for ax in axes]
    assert np.array_equal(fills[0], fills[1])  # the same region, the same colour, at every iteration


def test_show_segmentations_draws_gt_and_predictions_over_the_image():
    gt = np.array([[0, 1], [2, 2]])
    fig, axes = plt.subplots(1, 3)
    viz.show_segmentations(axes, torch.rand(3, 2, 2), gt, {"m": np.array([[5, 6], [8, 8]])})
    assert [len(ax.get_images()) for ax in axes] == [1, 2, 2]
    assert np.array_equal(axes[1].get_images()[1].get_array(), axes[2].get_images()[1].get_array())


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
    with Image.open(viz.save(fig, "x")) as img:  # ~4 in at the style's 150 dpi is ~600 px: raised to 900 px
        assert img.info["dpi"][0] > 150
        assert viz.MIN_LONG_SIDE_PX <= img.size[0] <= viz.MIN_LONG_SIDE_PX + 60  # the crop keeps 0.1 in of padding
    fig = plt.figure(figsize=(10, 2))
    fig.add_subplot().plot([0, 1])
    with Image.open(viz.save(fig, "y")) as img:
        assert img.info["dpi"][0] == pytest.approx(150, abs=0.1)  # already wide enough


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


def _overprinted(ax) -> bool:
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_timestep_sweep_has_a_linear_t_axis_without_negative_or_overprinted_ticks():
    ts = [0, 25, 50, 100, 200, 300, 500, 700]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), layout="constrained")
    sweep = _sweep(ts)
    viz.plot_timestep_sweep(axes.flat, sweep, sweep["none"][0]["diffseg"])
    fig.canvas.draw()
    for ax in axes.flat:
        assert ax.get_xscale() == "linear"
        lo, hi = ax.get_xlim()
        shown = [tk for tk in ax.get_xticks() if lo <= tk <= hi]
        assert min(shown) == 0 and all(tk >= 0 for tk in shown) and len(shown) <= 8
        assert not any("−" in t.get_text() or "-" in t.get_text() for t in ax.get_xticklabels())
        assert not _overprinted(ax)
        assert set(ts) <= {*ax.get_xticks(minor=True), *shown}  # the sampled grid: small ticks between labels
        assert ax.get_legend() is None  # one legend, outside the panels
    (legend,) = fig.legends
    assert legend.get_window_extent().y1 <= min(ax.get_window_extent().y0 for ax in axes.flat)
    lines = axes.flat[0].get_lines()
    by_mode = [[ln.get_color() for ln in lines if ln.get_linestyle() == ls] for ls in ("-", "--")]
    assert by_mode[0] == by_mode[1] and len(set(by_mode[0])) == 2  # same side, same colour, in both modes


def test_timestep_axis_on_a_dense_grid_keeps_labels_apart():
    fig, ax = plt.subplots(figsize=(3, 2))
    ts = list(range(0, 1000, 20))
    ax.plot(ts, ts)
    viz.timestep_axis(ax, ts)
    fig.canvas.draw()
    assert not _overprinted(ax) and len(ax.get_xticks()) <= 8


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
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1  # beside the axes, not over data
    plt.close(fig)


def test_iou_by_area_plot_has_one_line_per_nonempty_bin():
    bins = lambda v: [{"lo": 0, "hi": 48, "n": 3, "iou": v, "se": 0.1},  # noqa: E731
                      {"lo": 48, "hi": 1 << 30, "n": 0, "iou": float("nan"), "se": float("nan")}]
    fig, ax = plt.subplots()
    viz.plot_iou_by_area(ax, {0: bins(0.5), 300: bins(0.2)}, lambda b: f"{b['lo']}-{b['hi']} px")
    assert len(ax.get_legend().get_texts()) == 1 and ax.get_legend().get_texts()[0].get_text() == "0-48 px (n 3)"
    plt.close(fig)


def test_aggregation_drawing_shows_one_row_per_side_and_the_sum():
    total = torch.full((4, 4), 1 / 16)
    fig = viz.show_aggregation({4: torch.full((4, 4), 1 / 16), 2: torch.full((2, 2), 0.25)},
                               {4: total, 2: total}, {4: 2 / 3, 2: 1 / 3}, total, (1, 2))
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("query side" in t for t in titles) == 2 and any("weighted sum" in t for t in titles)
    assert sorted(t.get_text() for ax in fig.axes for t in ax.texts if t.get_text().startswith("×")) == \
        ["× 1/3", "× 2/3"]
    plt.close(fig)
