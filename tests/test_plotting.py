"""The shared plotting helpers draw what their docstrings promise."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex, to_rgb

from cvcourse.plotting import CLASS_COLOURS, plot_decision_regions, show_images, plot_training_curves


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_decision_regions_colour_the_plane_by_the_prediction():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([0, 1, 0, 1])
    ax = plot_decision_regions(lambda P: (P[:, 0] > 0.5).astype(int), X, y, resolution=50)
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(points) == 2  # one scatter per class
    assert sum(len(p.get_offsets()) for p in points) == 4
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1"]
    assert to_hex(points[0].get_facecolors()[0]) == CLASS_COLOURS[0].lower()
    # Left half predicted 0, right half 1: the rendered plane shows those classes' colours there.
    assert region_colour_at(ax, 0.2, 0.5) == pytest.approx(shaded(CLASS_COLOURS[0]), abs=0.02)
    assert region_colour_at(ax, 0.8, 0.5) == pytest.approx(shaded(CLASS_COLOURS[1]), abs=0.02)


def shaded(colour, alpha=0.25):
    """What a region of ``colour`` drawn at ``alpha`` over the white axes looks like."""
    return tuple(alpha * c + (1 - alpha) for c in to_rgb(colour))


def region_colour_at(ax, x, y):
    """The RGB colour the rendered figure shows at data point (x, y)."""
    fig = ax.figure
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    px, py = ax.transData.transform((x, y))
    row, column = int(round(pixels.shape[0] - py)), int(round(px))
    return tuple(pixels[row, column, :3] / 255)


def test_decision_regions_show_a_label_only_the_model_predicts():
    """The model predicts -1 (absent from y) on the left: no crash, the real classes keep their
    names and colours, and the extra label gets a region colour of its own."""
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([0, 1, 0, 1])

    def predict(P):
        return np.select([P[:, 0] < 0.3, P[:, 0] < 0.7], [-1, 0], 1)

    ax = plot_decision_regions(predict, X, y, class_names=["zero", "one"], resolution=60)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["zero", "one"]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [to_hex(p.get_facecolors()[0]) for p in points] == [CLASS_COLOURS[0].lower(),
                                                               CLASS_COLOURS[1].lower()]
    assert region_colour_at(ax, 0.5, 0.5) == pytest.approx(shaded(CLASS_COLOURS[0]), abs=0.02)
    assert region_colour_at(ax, 0.85, 0.5) == pytest.approx(shaded(CLASS_COLOURS[1]), abs=0.02)
    assert region_colour_at(ax, 0.15, 0.5) == pytest.approx(shaded(CLASS_COLOURS[2]), abs=0.02)


def test_decision_regions_accept_estimators_and_reject_bad_shapes():
    class Constant:
        def predict(self, P):
            return np.zeros(len(P), dtype=int)

    X = np.random.default_rng(0).normal(size=(10, 2))
    plot_decision_regions(Constant(), X, np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot_decision_regions(Constant(), np.zeros((10, 3)), np.zeros(10))
    with pytest.raises(ValueError, match="labels"):
        plot_decision_regions(Constant(), X, np.zeros(9))
    with pytest.raises(TypeError):
        plot_decision_regions(object(), X, np.zeros(10))


def test_show_images_titles_and_marks_wrong_predictions():
    images = np.random.default_rng(0).integers(0, 255, size=(5, 8, 8), dtype=np.uint8)
    fig = show_images(images, labels=[0, 1, 2, 3, 4], predicted=[0, 1, 9, 3, 4],
                      class_names=[str(i) * 2 for i in range(10)], ncols=3)
    axes = fig.axes
    assert len(axes) == 6  # 2 rows of 3, the last one empty
    shown = [ax for ax in axes if ax.images]
    assert len(shown) == 5
    titles = [ax.get_title() for ax in shown]
    assert titles[2] == "99\n(true: 22)"
    assert to_hex(shown[2].title.get_color()) != to_hex(shown[0].title.get_color())


def test_show_images_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        show_images(np.zeros((3, 4, 4)), labels=[1, 2])
    with pytest.raises(ValueError, match="shape"):
        show_images(np.zeros((4, 4)))


def test_training_curves_draw_train_and_validation_per_metric():
    history = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6], "accuracy": [0.5, 0.7, 0.8]}
    fig = plot_training_curves(history, metrics=("loss", "accuracy"))
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 2 and len(acc_ax.lines) == 1
    np.testing.assert_array_equal(loss_ax.lines[1].get_ydata(), [1.1, 0.7, 0.6])
    np.testing.assert_array_equal(loss_ax.lines[0].get_xdata(), [1, 2, 3])
    with pytest.raises(KeyError, match="top5"):
        plot_training_curves(history, metrics=("top5",))


@pytest.mark.parametrize("captions", ["one-line", "two-line"])
def test_show_images_titles_overlap_neither_images_nor_the_suptitle(captions):
    images = np.zeros((16, 8, 8))
    if captions == "one-line":
        fig = show_images(images, titles=[f"NN: {i}, d={i * 1.5:.1f}" for i in range(16)],
                          ncols=8, size=1.2, suptitle="Test images and their nearest neighbours")
    else:
        fig = show_images(images, labels=[0] * 16, predicted=[1] * 16, ncols=8, size=1.2,
                          suptitle="Predictions")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    suptitle_box = fig._suptitle.get_window_extent(renderer)
    for index, ax in enumerate(fig.axes):
        title_box = ax.title.get_window_extent(renderer)
        assert figure_box.y0 <= title_box.y0 and title_box.y1 <= figure_box.y1 + 1e-6
        assert title_box.y1 <= suptitle_box.y0 + 1e-6, "a title runs into the suptitle"
        if index >= 8:  # second row: its titles stay below the images of the first row
            above = fig.axes[index - 8].get_images()[0].get_window_extent(renderer)
            assert title_box.y1 <= above.y0 + 1e-6, "a second-row title overlaps the image above"


def test_decision_regions_work_with_minus_one_plus_one_labels():
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.1, 0.2], [0.9, 0.8]])
    y = np.array([-1, 1, -1, 1])
    ax = plot_decision_regions(lambda P: np.where(P.sum(axis=1) > 1, 1, -1), X, y,
                               class_names={-1: "negative", 1: "positive"}, resolution=20)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["negative", "positive"]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert to_hex(points[0].get_facecolors()[0]) == CLASS_COLOURS[0].lower()
    assert to_hex(points[1].get_facecolors()[0]) == CLASS_COLOURS[1].lower()
    # Two filled regions, indexed 0 and 1 whatever the label values are.
    np.testing.assert_array_equal(ax.collections[0].levels, [-0.5, 0.5, 1.5])
