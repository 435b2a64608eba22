"""Figures that more than one chapter draws.

Every function draws on a Matplotlib ``Axes`` (made if not given) and returns it, or
returns the ``Figure`` for multi-panel plots, so a chapter can add titles or save it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

__all__ = ["plot_decision_regions", "show_images", "plot_training_curves"]

# Colour-blind-safe qualitative palette (Okabe and Ito), one colour per class.
CLASS_COLOURS = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#999999",
    "#882255",
)


def _predict_function(model) -> Callable[[np.ndarray], np.ndarray]:
    if callable(getattr(model, "predict", None)):
        return model.predict
    if callable(model):
        return model
    raise TypeError("model must have a .predict(X) method or be a function of X")


def plot_decision_regions(
    model,
    X: np.ndarray,
    y: np.ndarray,
    *,
    ax: Axes | None = None,
    resolution: int = 300,
    padding: float = 0.1,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    xlabel: str = "$x_1$",
    ylabel: str = "$x_2$",
    point_size: float = 18,
) -> Axes:
    """Colour the plane by the class a 2-D classifier predicts, and draw the points.

    Parameters
    ----------
    model : estimator with ``predict`` or callable
        Maps an array of shape (M, 2) to M integer labels.
    X : ndarray of shape (N, 2)
        The points to draw (usually the training or test data).
    y : ndarray of shape (N,)
        Their integer labels, used for the points' colours.
    resolution : int
        Grid points per axis at which the model is evaluated.
    padding : float
        Margin around the data, as a fraction of its range.
    class_names : sequence or mapping of str, optional
        Legend labels: a sequence in the order of the sorted labels of ``y``, or a mapping
        from label to name. A label the model predicts but ``y`` lacks gets a region of its
        own colour and no legend entry.

    Returns
    -------
    matplotlib.axes.Axes
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have shape (N, 2), got {X.shape}")
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} points but y has {len(y)} labels")
    predict = _predict_function(model)
    ax = ax if ax is not None else plt.subplots(figsize=(5, 4))[1]

    low, high = X.min(axis=0), X.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    low, high = low - padding * span, high + padding * span
    grid_x, grid_y = np.meshgrid(
        np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution)
    )
    predicted = np.asarray(predict(np.c_[grid_x.ravel(), grid_y.ravel()])).reshape(grid_x.shape)

    # Any label values work (0..K-1, -1/+1, 3/8): colours and names follow the sorted labels of
    # ``y``; a label only the model predicts comes after them, so it shifts neither the colour nor
    # the name of a real class.
    labelled = np.unique(y)
    classes = np.concatenate([labelled, np.setdiff1d(np.unique(predicted), labelled)])
    colours = [CLASS_COLOURS[i % len(CLASS_COLOURS)] for i in range(len(classes))]
    order = np.argsort(classes, kind="stable")
    region_index = order[np.searchsorted(classes[order], predicted)]
    ax.contourf(
        grid_x, grid_y, region_index, levels=np.arange(-0.5, len(classes)),
        cmap=ListedColormap(colours), alpha=0.25,
    )
    for index, label in enumerate(classes):
        mask = y == label
        if not mask.any():
            continue
        if class_names is None:
            name = f"class {label}"
        elif isinstance(class_names, Mapping):
            name = class_names[label]
        else:
            name = class_names[index]
        ax.scatter(
            X[mask, 0], X[mask, 1], s=point_size, color=colours[index],
            edgecolors="white", linewidths=0.5, label=name,
        )
    ax.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]), xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small", framealpha=0.8)
    return ax


def show_images(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray | None = None,
    *,
    class_names: Sequence[str] | None = None,
    predicted: Sequence[int] | np.ndarray | None = None,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    size: float = 1.3,
    cmap: str = "gray",
    suptitle: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """Show images in a grid, each titled with its label (and prediction).

    Parameters
    ----------
    images : ndarray of shape (N, H, W) or (N, H, W, 3)
        Grey or colour images; uint8 in [0, 255] or floats (scaled per image unless
        ``vmin`` and ``vmax`` are given).
    labels : array of shape (N,), optional
        True labels, shown as titles (through ``class_names`` when given).
    predicted : array of shape (N,), optional
        Predicted labels; a title turns red where the prediction is wrong.
    titles : sequence of N str, optional
        Free-form titles, used instead of labels.
    ncols : int
        Images per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, 3), got {images.shape}")
    n = len(images)
    for name, values in (("labels", labels), ("predicted", predicted), ("titles", titles)):
        if values is not None and len(values) != n:
            raise ValueError(f"{n} images but {len(values)} {name}")
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))

    def name_of(label) -> str:
        return class_names[int(label)] if class_names is not None else str(label)

    captions: list[tuple[str | None, str]] = []  # (title, colour) per image
    for index in range(n):
        if titles is not None:
            captions.append((titles[index], "black"))
        elif labels is not None and predicted is not None:
            wrong = predicted[index] != labels[index]
            captions.append((f"{name_of(predicted[index])}\n(true: {name_of(labels[index])})",
                             "crimson" if wrong else "black"))
        elif labels is not None or predicted is not None:
            captions.append((name_of((labels if labels is not None else predicted)[index]), "black"))
        else:
            captions.append((None, "black"))
    # Leave room above every row for its tallest caption, so titles never overlap images.
    title_lines = max((c.count("\n") + 1 for c, _ in captions if c is not None), default=0)
    row_height = size + 0.17 * title_lines
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, row_height * nrows + (0.4 if suptitle else 0)),
        squeeze=False,
    )
    for index, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if index >= n:
            continue
        ax.imshow(images[index], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        title, colour = captions[index]
        if title is not None:
            ax.set_title(title, fontsize=8, color=colour)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_training_curves(
    history,
    metrics: Sequence[str] = ("loss",),
    *,
    axes: Sequence[Axes] | None = None,
    label: str | None = None,
) -> Figure:
    """Plot training and validation curves per epoch, one panel per metric.

    Parameters
    ----------
    history : keras ``History`` or mapping of str to sequence of float
        ``history.history`` of ``model.fit``, or a dict such as
        ``{"loss": [...], "val_loss": [...]}``. For each metric ``m`` the series ``m``
        (training) and ``val_m`` (validation), where present, are drawn.
    metrics : sequence of str
        Metric names, e.g. ``("loss", "accuracy")``.
    axes : sequence of Axes, optional
        One per metric, to draw several runs on the same panels.
    label : str, optional
        Prefix of the legend entries, to tell runs apart.

    Returns
    -------
    matplotlib.figure.Figure
    """
    series: Mapping[str, Sequence[float]] = getattr(history, "history", history)
    missing = [m for m in metrics if m not in series and f"val_{m}" not in series]
    if missing:
        raise KeyError(f"history has no series for {missing}; it has {sorted(series)}")
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2), squeeze=False)
        axes = axes.ravel()
    if len(axes) != len(metrics):
        raise ValueError(f"{len(metrics)} metrics but {len(axes)} axes")
    prefix = f"{label}: " if label else ""
    for ax, metric in zip(axes, metrics):
        for key, style, kind in ((metric, "-", "train"), (f"val_{metric}", "--", "validation")):
            if key in series:
                values = np.asarray(series[key], dtype=float)
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, style, marker="o", markersize=3, label=f"{prefix}{kind}")
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig = axes[0].figure
    fig.tight_layout()
    return fig


# --- How the book shows figures -----------------------------------------------------------------
# A figure is laid out at 100 dpi and rendered at twice that, then shown at its 100-dpi size, so it
# is sharp on high-density (2x) screens. To keep every page light (tests/test_browser.py holds each
# page under 2 MB), a figure with photographs or feature maps is sent as JPEG, any other (lines,
# bars, scatter plots, small pixel grids) as a 256-colour PNG, which looks the same for plots.
BOOK_FIGURE_DPI = 200
PHOTO_SIDE = 64  # an image panel with at least this many pixels on each side counts as a photo
JPEG_QUALITY = 85


def _has_photo(fig: Figure) -> bool:
    for ax in fig.axes:
        for image in ax.get_images():
            array = image.get_array()
            if array is not None and min(array.shape[:2]) >= PHOTO_SIDE:
                return True
    return False


def figure_for_the_web(fig: Figure) -> tuple[str, bytes, dict[str, int]]:
    """(mime type, encoded bytes, {'width', 'height'} to show it at) of ``fig`` for a web page."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.canvas.print_figure(buffer, format="png", dpi=BOOK_FIGURE_DPI, bbox_inches="tight")
    image = Image.open(buffer).convert("RGB")
    shown = {"width": round(image.width * 100 / BOOK_FIGURE_DPI),
             "height": round(image.height * 100 / BOOK_FIGURE_DPI)}
    encoded = io.BytesIO()
    if _has_photo(fig):
        image.save(encoded, format="jpeg", quality=JPEG_QUALITY, optimize=True, progressive=True)
        return "image/jpeg", encoded.getvalue(), shown
    palette = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(encoded, format="png", optimize=True)
    return "image/png", encoded.getvalue(), shown


def use_book_figure_formats() -> bool:
    """In a Jupyter kernel, show figures as :func:`figure_for_the_web` encodes them; elsewhere
    (scripts, tests) do nothing. Returns whether the formats were installed."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter") or "matplotlib_inline" not in plt.get_backend():
        return False
    # Importing the inline backend sets up its own figure formats once; it must happen before
    # ours are installed, or it would replace them at the chapter's first figure.
    import matplotlib_inline.backend_inline  # noqa: F401

    formatters = shell.display_formatter.formatters

    def formatter(mime_type):
        def encode(fig):
            if ("image/jpeg" if _has_photo(fig) else "image/png") != mime_type:
                return None
            _, data, shown = figure_for_the_web(fig)
            return data, shown
        return encode

    for mime_type in ("image/png", "image/jpeg", "image/svg+xml", "application/pdf"):
        formatters[mime_type].pop(Figure, None)
    formatters["image/png"].for_type(Figure, formatter("image/png"))
    formatters["image/jpeg"].for_type(Figure, formatter("image/jpeg"))
    return True


use_book_figure_formats()
