"""Data loaders for the course: real images, offline first.

Every loader returns NumPy arrays whose shapes, dtypes and value ranges are stated in
its docstring and checked before they are returned. Results are cached (in memory for
all loaders, and on disk for Fashion-MNIST, whose parsing is the only slow step), and
callers always get their own copy, so a chapter that scales its arrays in place cannot
change what the next caller sees.

When a source is missing or damaged the loader raises a :class:`DataError` whose
message says what was looked for, where, and how to get it.

=====================  ============================================  ===========================
loader                 returns                                       source (offline)
=====================  ============================================  ===========================
load_digits            images (1797, 8, 8) float64 in [0, 16],       scikit-learn
                       labels (1797,) int64 in 0..9
load_faces_vs_nonfaces images (200, 25, 25) float64 in [0, 1],       scikit-image ``lfw_subset``
                       labels (200,) int64, 1 = face, 0 = non-face
load_fashion_mnist     (x_train (60000, 28, 28) uint8 in [0, 255],   Debian ``dataset-fashion-
                       y_train (60000,) int64 in 0..9),              mnist``, else the Keras
                       (x_test (10000, 28, 28), y_test (10000,))     download
load_photo             (H, W, 3) uint8, or (H, W) with grayscale     scikit-image, scikit-learn
load_texture           (512, 512) uint8                              scikit-image
=====================  ============================================  ===========================
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import sys
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "DataUnavailableError",
    "CorruptDataError",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "PHOTOS",
    "TEXTURES",
    "cache_dir",
    "fashion_mnist_search_dirs",
    "load_digits",
    "load_faces_vs_nonfaces",
    "load_fashion_mnist",
    "load_photo",
    "load_texture",
]


class DataError(RuntimeError):
    """A data set could not be loaded; the message says how to get it."""


class DataUnavailableError(DataError):
    """The data set is not on this machine and could not be fetched."""


class CorruptDataError(DataError):
    """A data file exists but its content is not what the loader expects."""


def _frozen_copy(array: np.ndarray) -> np.ndarray:
    """Return a read-only copy, so a cached array cannot be edited by a caller."""
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def cache_dir() -> Path:
    """Folder for the course's on-disk caches.

    ``$CVCOURSE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/cvcourse``, else
    ``~/.cache/cvcourse``. Created on first use.
    """
    root = os.environ.get("CVCOURSE_CACHE_DIR")
    if root is None:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cvcourse"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------
# digits (scikit-learn)
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    images = bunch.images.astype(np.float64)
    labels = bunch.target.astype(np.int64)
    _check(images.shape == (1797, 8, 8), "digits", f"images have shape {images.shape}")
    _check(labels.shape == (1797,), "digits", f"labels have shape {labels.shape}")
    _check(images.min() >= 0 and images.max() <= 16, "digits", "pixel values outside [0, 16]")
    _check(set(np.unique(labels)) == set(range(10)), "digits", "labels are not 0..9")
    return _frozen_copy(images), _frozen_copy(labels)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's handwritten digits (UCI, 1 797 scans of 8x8 pixels).

    Returns
    -------
    images : ndarray of shape (1797, 8, 8), float64
        Pixel values are counts of "on" pixels in 4x4 blocks of the original 32x32
        bitmap, so they lie in [0, 16]. ``images.reshape(len(images), -1)`` gives the
        usual (1797, 64) feature matrix.
    labels : ndarray of shape (1797,), int64
        The digit, 0..9; every class has 174 to 183 examples.
    """
    images, labels = _digits()
    return images.copy(), labels.copy()


# ---------------------------------------------------------------------------
# faces vs non-faces (scikit-image)
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _faces_vs_nonfaces() -> tuple[np.ndarray, np.ndarray]:
    try:
        from skimage.data import lfw_subset
    except ImportError as error:  # pragma: no cover - scikit-image is a dependency
        raise DataUnavailableError(
            "faces vs non-faces needs scikit-image (pip install scikit-image)."
        ) from error
    try:
        images = np.asarray(lfw_subset(), dtype=np.float64)
    except (OSError, ValueError) as error:
        raise DataUnavailableError(
            "scikit-image's lfw_subset could not be read. It ships inside the "
            "scikit-image package; reinstall it (pip install --force-reinstall "
            f"scikit-image). Cause: {error}"
        ) from error
    _check(images.shape == (200, 25, 25), "lfw_subset", f"images have shape {images.shape}")
    _check(images.min() >= 0 and images.max() <= 1, "lfw_subset", "pixels outside [0, 1]")
    # scikit-image documents the order: the first 100 images are faces, the rest are not.
    labels = np.repeat(np.array([1, 0], dtype=np.int64), 100)
    return _frozen_copy(images), _frozen_copy(labels)


def load_faces_vs_nonfaces() -> tuple[np.ndarray, np.ndarray]:
    """Load 100 face and 100 non-face crops from Labeled Faces in the Wild.

    Returns
    -------
    images : ndarray of shape (200, 25, 25), float64 in [0, 1]
        Grey-level crops; the first 100 are faces, the last 100 are not.
    labels : ndarray of shape (200,), int64
        1 for a face, 0 for a non-face.
    """
    images, labels = _faces_vs_nonfaces()
    return images.copy(), labels.copy()


# ---------------------------------------------------------------------------
# Fashion-MNIST (Debian package, else the Keras download)
# ---------------------------------------------------------------------------

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Class names of Fashion-MNIST, indexed by label."""

FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
"""The four files of the original release, which Debian and Keras both use."""

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_MNIST_SIZES = {"train": 60_000, "test": 10_000}
# Bump when the cached arrays' layout changes, so old caches are rebuilt.
_CACHE_FORMAT = 1


FASHION_MNIST_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
"""Where Keras downloads the four files from (the URL ``keras.datasets.fashion_mnist`` uses)."""

_KERAS_SUBDIR = os.path.join("datasets", "fashion-mnist")


def _keras_home() -> Path:
    """The folder Keras caches downloads in. Keras fixes it when it is imported (``$KERAS_HOME``,
    else ``~/.keras``, else ``/tmp/.keras`` when the home folder is not writable), so once Keras
    is loaded its own answer is used; before, the same rule is applied to the environment."""
    config = sys.modules.get("keras.src.backend.config")
    if config is not None and hasattr(config, "keras_home"):
        return Path(config.keras_home())
    if "KERAS_HOME" in os.environ:
        return Path(os.environ["KERAS_HOME"])
    home = Path("~").expanduser()
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def _keras_fashion_mnist_dir() -> Path:
    return _keras_home() / _KERAS_SUBDIR


def fashion_mnist_search_dirs() -> list[Path]:
    """Folders searched for the four Fashion-MNIST files, in order.

    ``$CVCOURSE_FASHION_MNIST_DIR`` alone when it is set (an explicit choice is never
    second-guessed); otherwise the Debian package's folder, then Keras's download folder.
    """
    explicit = os.environ.get("CVCOURSE_FASHION_MNIST_DIR")
    if explicit:
        return [Path(explicit)]
    return [DEBIAN_FASHION_MNIST_DIR, _keras_fashion_mnist_dir()]


def _find_fashion_mnist_dir() -> Path | None:
    for folder in fashion_mnist_search_dirs():
        if all((folder / name).is_file() for name in FASHION_MNIST_FILES.values()):
            return folder
    return None


def _download_fashion_mnist() -> Path:
    """Fetch the files with Keras (about 30 MB) and return the folder they are in.

    The folder is the one ``keras.utils.get_file`` reports, not one computed here: Keras picks
    its cache folder when it is imported, and falls back to ``/tmp/.keras`` when that one is
    not writable.
    """
    from keras.utils import get_file

    folders = {
        Path(get_file(name, origin=FASHION_MNIST_ORIGIN + name, cache_subdir=_KERAS_SUBDIR)).parent
        for name in FASHION_MNIST_FILES.values()
    }
    if len(folders) != 1:
        raise DataUnavailableError(f"Keras put the Fashion-MNIST files in several folders: {sorted(folders)}")
    return folders.pop()


def _fashion_mnist_missing_message(searched: list[Path], cause: BaseException | None) -> str:
    lines = [
        "Fashion-MNIST was not found on this machine.",
        "Looked for " + ", ".join(FASHION_MNIST_FILES.values()) + " in:",
        *[f"  - {folder}" for folder in searched],
    ]
    if cause is not None:
        lines.append(f"Downloading it with Keras failed too: {type(cause).__name__}: {cause}")
    lines += [
        "Get it in one of these ways:",
        "  1. Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist   (or: sudo make data)",
        "  2. On a machine with internet access, run load_fashion_mnist() once: Keras",
        "     downloads the files into ~/.keras/datasets/fashion-mnist/.",
        "  3. Copy the four files into a folder and point CVCOURSE_FASHION_MNIST_DIR at it.",
    ]
    return "\n".join(lines)


def _offline() -> bool:
    return os.environ.get("CVCOURSE_OFFLINE", "").lower() in {"1", "true", "yes"}


def _read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parse one gzip-compressed IDX file (the MNIST format) into a uint8 array."""
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise CorruptDataError(_corrupt_message(path, f"not a readable gzip file ({error})")) from error
    header_size = 4 + 4 * expected_ndim
    if len(raw) < header_size:
        raise CorruptDataError(_corrupt_message(path, "file is too short for an IDX header"))
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim != expected_ndim:
        raise CorruptDataError(
            _corrupt_message(path, f"bad IDX magic (dtype 0x{dtype_code:02x}, {ndim} dims)")
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected_bytes = int(np.prod(shape))
    payload = raw[header_size:]
    if len(payload) != expected_bytes:
        raise CorruptDataError(
            _corrupt_message(
                path, f"header promises {expected_bytes} bytes of data, file holds {len(payload)}"
            )
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape)


def _corrupt_message(path: Path, what: str) -> str:
    return (
        f"Fashion-MNIST file {path} is damaged: {what}.\n"
        "Reinstall it (sudo apt-get install --reinstall dataset-fashion-mnist), or delete "
        "the file so that the Keras download fetches it again."
    )


def _parse_fashion_mnist(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for key, name in FASHION_MNIST_FILES.items():
        array = _read_idx(folder / name, expected_ndim=3 if key.startswith("x") else 1)
        arrays[key] = array if key.startswith("x") else array.astype(np.int64)
    for split, size in _FASHION_MNIST_SIZES.items():
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape != (size, 28, 28) or y.shape != (size,):
            raise CorruptDataError(
                _corrupt_message(
                    folder / FASHION_MNIST_FILES[f"x_{split}"],
                    f"{split} split has images {x.shape} and labels {y.shape}, "
                    f"expected ({size}, 28, 28) and ({size},)",
                )
            )
        counts = np.bincount(y, minlength=10)
        if len(counts) != 10 or not np.all(counts == size // 10):
            raise CorruptDataError(
                _corrupt_message(
                    folder / FASHION_MNIST_FILES[f"y_{split}"],
                    f"labels of the {split} split are not 10 balanced classes (counts {counts.tolist()})",
                )
            )
    return arrays


def _source_signature(folder: Path) -> np.ndarray:
    """Sizes and modification times of the source files: a changed file invalidates the cache."""
    stats = [(folder / name).stat() for name in FASHION_MNIST_FILES.values()]
    return np.array([_CACHE_FORMAT] + [s.st_size for s in stats] + [s.st_mtime_ns for s in stats], dtype=np.int64)


def _load_cached(cache_file: Path, signature: np.ndarray) -> dict[str, np.ndarray] | None:
    try:
        with np.load(cache_file) as cached:
            if not np.array_equal(cached["signature"], signature):
                return None
            return {key: cached[key] for key in FASHION_MNIST_FILES}
    except (OSError, KeyError, ValueError, EOFError):
        # A missing, truncated or stale cache is rebuilt from the source, never trusted.
        return None


@functools.lru_cache(maxsize=1)
def _fashion_mnist(folder: Path) -> dict[str, np.ndarray]:
    signature = _source_signature(folder)
    cache_file = cache_dir() / "fashion_mnist.npz"
    arrays = _load_cached(cache_file, signature)
    if arrays is None:
        arrays = _parse_fashion_mnist(folder)
        temporary = cache_file.with_suffix(".tmp.npz")
        np.savez(temporary, signature=signature, **arrays)
        temporary.replace(cache_file)  # atomic: a killed process never leaves half a cache
    return {key: _frozen_copy(value) for key, value in arrays.items()}


def load_fashion_mnist(
    *, allow_download: bool | None = None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST: 70 000 greyscale photos of clothing, 28x28, in 10 classes.

    Looks for the original files in the folders of :func:`fashion_mnist_search_dirs`
    (the Debian package ``dataset-fashion-mnist`` first). If they are nowhere, Keras
    downloads them, unless ``allow_download`` is False or ``$CVCOURSE_OFFLINE`` is set.

    Parameters
    ----------
    allow_download : bool, optional
        Whether Keras may download the files. Defaults to True unless the environment
        variable ``CVCOURSE_OFFLINE`` is 1, true or yes.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_train`` (60000, 28, 28) and ``x_test`` (10000, 28, 28): uint8 in [0, 255],
        white garment on black. ``y_train`` (60000,) and ``y_test`` (10000,): int64 in
        0..9, names in :data:`FASHION_MNIST_CLASSES`; 6 000 and 1 000 images per class.

    Raises
    ------
    DataUnavailableError
        No copy was found and none could be downloaded.
    CorruptDataError
        A file exists but is not a valid Fashion-MNIST file.
    """
    if allow_download is None:
        allow_download = not _offline()
    folder = _find_fashion_mnist_dir()
    if folder is None:
        searched = fashion_mnist_search_dirs()
        if not allow_download:
            raise DataUnavailableError(_fashion_mnist_missing_message(searched, None))
        try:
            folder = _download_fashion_mnist()
        except Exception as error:  # any failure of the download means "unavailable"
            raise DataUnavailableError(_fashion_mnist_missing_message(searched, error)) from error
    arrays = _fashion_mnist(folder)
    return (
        (arrays["x_train"].copy(), arrays["y_train"].copy()),
        (arrays["x_test"].copy(), arrays["y_test"].copy()),
    )


# ---------------------------------------------------------------------------
# photos and textures (scikit-image, scikit-learn)
# ---------------------------------------------------------------------------


def _skimage(name: str):
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


def _sklearn_sample(filename: str):
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


PHOTOS = {
    "astronaut": _skimage("astronaut"),  # Eileen Collins, 512x512 colour
    "chelsea": _skimage("chelsea"),  # a cat, 300x451 colour
    "coffee": _skimage("coffee"),  # a cup of coffee, 400x600 colour
    "rocket": _skimage("rocket"),  # a launch, 427x640 colour
    "china": _sklearn_sample("china.jpg"),  # a temple, 427x640 colour
    "flower": _sklearn_sample("flower.jpg"),  # a flower, 427x640 colour
    "camera": _skimage("camera"),  # the cameraman, 512x512 grey
    "coins": _skimage("coins"),  # Greek coins, 303x384 grey
    "moon": _skimage("moon"),  # the moon's surface, 512x512 grey
}
"""Real photos available offline, by name."""

TEXTURES = {
    "brick": _skimage("brick"),
    "grass": _skimage("grass"),
    "gravel": _skimage("gravel"),
}
"""Grey-level 512x512 texture photos available offline, by name."""


def _to_grey_uint8(rgb: np.ndarray) -> np.ndarray:
    # ITU-R BT.709 luma, the weights skimage.color.rgb2gray uses.
    grey = rgb[..., :3].astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721])
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _image(table_name: str, name: str) -> np.ndarray:
    table = PHOTOS if table_name == "photo" else TEXTURES
    if name not in table:
        raise ValueError(f"unknown {table_name} {name!r}; choose one of: {', '.join(sorted(table))}")
    try:
        image = np.asarray(table[name]())
    except (OSError, ValueError) as error:
        raise DataUnavailableError(
            f"the {table_name} {name!r} could not be read from the package that ships it "
            f"(scikit-image or scikit-learn); reinstall that package. Cause: {error}"
        ) from error
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise CorruptDataError(f"{table_name} {name!r} has dtype {image.dtype} and shape {image.shape}")
    return _frozen_copy(image)


def load_photo(name: str, *, grayscale: bool = False) -> np.ndarray:
    """Load a real photo by name (see :data:`PHOTOS`).

    Parameters
    ----------
    name : str
        One of ``PHOTOS``: astronaut, chelsea, coffee, rocket, china, flower, camera,
        coins, moon.
    grayscale : bool
        Return one grey channel (BT.709 luma) instead of three colour channels.

    Returns
    -------
    ndarray, uint8 in [0, 255]
        Shape (H, W, 3), or (H, W) when ``grayscale`` is True. Photos that exist only in
        grey (camera, coins, moon) are repeated into three equal channels when
        ``grayscale`` is False, so the shape depends only on the argument.
    """
    image = _image("photo", name)
    if grayscale:
        return _to_grey_uint8(image) if image.ndim == 3 else image.copy()
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return image[..., :3].copy()


def load_texture(name: str) -> np.ndarray:
    """Load a grey-level texture photo by name (brick, grass or gravel).

    Returns
    -------
    ndarray of shape (512, 512), uint8 in [0, 255]
    """
    image = _image("texture", name)
    if image.shape != (512, 512):
        raise CorruptDataError(f"texture {name!r} has shape {image.shape}, expected (512, 512)")
    return image.copy()


def _check(condition: bool, source: str, what: str) -> None:
    if not condition:
        raise CorruptDataError(
            f"{source} is not what the course expects: {what}. Reinstall the package that "
            "ships it (scikit-learn or scikit-image) at the version pinned in pyproject.toml."
        )
