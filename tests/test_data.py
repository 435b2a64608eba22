"""The data layer: shapes, dtypes, value ranges and class counts of every loader, its caches,
and the errors it raises when a source is missing or damaged."""

import gzip
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import subprocess_env

from cvcourse import data
from cvcourse.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_FILES,
    PHOTOS,
    TEXTURES,
    CorruptDataError,
    DataUnavailableError,
    load_digits,
    load_faces_vs_nonfaces,
    load_fashion_mnist,
    load_photo,
    load_texture,
)

# A real copy: where the user's CVCOURSE_FASHION_MNIST_DIR points, else the default places.
FASHION_SOURCE = next(
    (folder for folder in [*data.fashion_mnist_search_dirs(), data.DEBIAN_FASHION_MNIST_DIR, data._keras_fashion_mnist_dir()]
     if all((folder / name).is_file() for name in FASHION_MNIST_FILES.values())),
    None,
)
needs_fashion = pytest.mark.skipif(
    FASHION_SOURCE is None, reason="Fashion-MNIST is not installed (make data)"
)


@pytest.fixture(autouse=True)
def _only_the_real_copy(monkeypatch):
    """Each test starts from one known source, whatever CVCOURSE_FASHION_MNIST_DIR the user
    exported; a test that needs another sets its own."""
    if FASHION_SOURCE is None:
        monkeypatch.delenv("CVCOURSE_FASHION_MNIST_DIR", raising=False)
    else:
        monkeypatch.setenv("CVCOURSE_FASHION_MNIST_DIR", str(FASHION_SOURCE))


# --- digits ----------------------------------------------------------------------------


def test_digits_shapes_types_ranges_and_classes():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float64
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 16
    counts = np.bincount(labels)
    assert len(counts) == 10 and counts.min() >= 174 and counts.max() <= 183


def test_digits_callers_get_independent_writable_copies():
    images, labels = load_digits()
    images[:] = -1
    labels[:] = 99
    again_images, again_labels = load_digits()
    assert again_images.min() == 0 and again_labels.max() == 9


# --- faces vs non-faces -----------------------------------------------------------------


def test_faces_vs_nonfaces_shapes_and_label_order():
    images, labels = load_faces_vs_nonfaces()
    assert images.shape == (200, 25, 25) and images.dtype == np.float64
    assert 0 <= images.min() and images.max() <= 1
    assert labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [100, 100]


def test_face_labels_agree_with_an_independent_face_detector():
    """The labels are checked against something the loader does not build: scikit-image's own
    trained frontal-face detector (an LBP cascade shipped with it) finds a face in most crops
    labelled 1 and in almost none labelled 0 (measured: 75 of 100 and 0 of 100 at 50x50)."""
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade
    from skimage.transform import resize

    images, labels = load_faces_vs_nonfaces()
    detector = Cascade(lbp_frontal_face_cascade_filename())

    def has_face(image):
        big = resize(image, (50, 50))
        return len(detector.detect_multi_scale(img=big, scale_factor=1.1, step_ratio=1,
                                               min_size=(16, 16), max_size=(50, 50))) > 0

    found = np.array([has_face(image) for image in images])
    assert found[labels == 1].mean() >= 0.6, "the detector finds few faces among the crops labelled faces"
    assert found[labels == 0].mean() <= 0.05, "the detector finds faces among the crops labelled non-faces"


# --- Fashion-MNIST ----------------------------------------------------------------------


@needs_fashion
def test_fashion_mnist_shapes_types_ranges_and_balanced_classes(isolated_cache):
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(allow_download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and x_test.dtype == np.uint8
    assert x_train.min() == 0 and x_train.max() == 255
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert len(FASHION_MNIST_CLASSES) == 10
    # The images are not all alike: class means differ (a Trouser is not a Bag).
    means = np.array([x_train[y_train == c].mean() for c in range(10)])
    assert means.std() > 5


@needs_fashion
def test_fashion_mnist_is_cached_on_disk_and_the_cache_is_used(isolated_cache, monkeypatch):
    first = load_fashion_mnist(allow_download=False)
    cache_file = isolated_cache / "fashion_mnist.npz"
    assert cache_file.is_file()
    data._fashion_mnist.cache_clear()

    def no_parsing(folder):
        raise AssertionError("the source was parsed again although the cache is valid")

    monkeypatch.setattr(data, "_parse_fashion_mnist", no_parsing)
    second = load_fashion_mnist(allow_download=False)
    np.testing.assert_array_equal(first[0][0], second[0][0])
    np.testing.assert_array_equal(first[1][1], second[1][1])


@needs_fashion
def test_a_damaged_cache_is_rebuilt_from_the_source(isolated_cache):
    isolated_cache.mkdir(parents=True, exist_ok=True)
    (isolated_cache / "fashion_mnist.npz").write_bytes(b"not a numpy file")
    (x_train, _), _ = load_fashion_mnist(allow_download=False)
    assert x_train.shape == (60000, 28, 28)


def _copy_fashion_mnist(destination):
    destination.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_FILES.values():
        shutil.copy(FASHION_SOURCE / name, destination / name)
    return destination


def test_missing_source_without_download_says_how_to_get_the_data(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.setenv("CVCOURSE_FASHION_MNIST_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataUnavailableError) as error:
        load_fashion_mnist(allow_download=False)
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "CVCOURSE_FASHION_MNIST_DIR" in message
    assert str(tmp_path / "empty") in message


def test_offline_environment_variable_forbids_the_download(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.setenv("CVCOURSE_FASHION_MNIST_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("CVCOURSE_OFFLINE", "1")

    def download():
        raise AssertionError("download attempted although CVCOURSE_OFFLINE=1")

    monkeypatch.setattr(data, "_download_fashion_mnist", download)
    with pytest.raises(DataUnavailableError):
        load_fashion_mnist()


def test_failed_download_gives_one_clear_error_with_its_cause(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.setenv("CVCOURSE_FASHION_MNIST_DIR", str(tmp_path / "empty"))

    def download():
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(data, "_download_fashion_mnist", download)
    with pytest.raises(DataUnavailableError) as error:
        load_fashion_mnist(allow_download=True)
    message = str(error.value)
    assert "Temporary failure in name resolution" in message
    assert "apt-get install dataset-fashion-mnist" in message


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), compresslevel=1))


def _synthetic_fashion_mnist(folder):
    """Four valid IDX files of the real sizes, each image filled with its label's value."""
    folder.mkdir(parents=True)
    for split, size in (("train", 60000), ("test", 10000)):
        labels = np.arange(size) % 10
        _write_idx(folder / FASHION_MNIST_FILES[f"y_{split}"], labels)
        _write_idx(folder / FASHION_MNIST_FILES[f"x_{split}"], np.broadcast_to(labels[:, None, None], (size, 28, 28)))
    return folder


DOWNLOAD_SCRIPT = """
import os, sys
from pathlib import Path
from cvcourse import data
import keras  # Keras fixes its cache folder now: $HOME/.keras (KERAS_HOME is not set)

home, served, late_keras_home = sys.argv[1:]
# A KERAS_HOME set after Keras was imported does not move Keras's folder: the loader must not
# look there for what Keras fetched.
os.environ["KERAS_HOME"] = late_keras_home
data.DEBIAN_FASHION_MNIST_DIR = Path(home) / "no-debian"
data.FASHION_MNIST_ORIGIN = Path(served).as_uri() + "/"
(x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(allow_download=True)
print("RESULT", x_train.shape, x_test.shape, int(x_train[7].max()), int(y_test[13]), flush=True)
# Once fetched, the copy in Keras's folder is found: a dead origin is never consulted.
data._fashion_mnist.cache_clear()
data.FASHION_MNIST_ORIGIN = "file:///nonexistent/"
(x_again, _), _ = data.load_fashion_mnist(allow_download=True)
print("RESULT again", x_again.shape, flush=True)
"""


def test_download_fallback_uses_the_folder_keras_get_file_reports(tmp_path):
    """The real ``keras.utils.get_file`` fetches the four files from a ``file://`` origin in a
    fresh interpreter whose home is ``tmp_path/home``; the loader reads them from where Keras put
    them, and finds them there again without downloading."""
    served = _synthetic_fashion_mnist(tmp_path / "served")
    home = tmp_path / "home"
    home.mkdir()
    environment = subprocess_env(
        unset=("KERAS_HOME", "CVCOURSE_FASHION_MNIST_DIR", "CVCOURSE_OFFLINE", "XDG_CACHE_HOME"),
        HOME=str(home), CVCOURSE_CACHE_DIR=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3",
    )
    result = subprocess.run(
        [sys.executable, "-c", DOWNLOAD_SCRIPT, str(home), str(served), str(tmp_path / "late-keras-home")],
        capture_output=True, text=True, env=environment, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    assert results == ["RESULT (60000, 28, 28) (10000, 28, 28) 7 3", "RESULT again (60000, 28, 28)"]
    # Keras fetched each file once, before the first result, and never again.
    first_run = result.stdout.split("RESULT", 1)[0]
    assert first_run.count("Downloading data from file://") == 4
    assert result.stdout.count("Downloading data from") == 4
    fetched = home / ".keras" / "datasets" / "fashion-mnist"
    assert sorted(p.name for p in fetched.iterdir()) == sorted(FASHION_MNIST_FILES.values())
    assert not (tmp_path / "late-keras-home").exists()


def test_search_dirs_follow_the_keras_folder_unless_the_user_names_one(tmp_path, monkeypatch):
    monkeypatch.delenv("CVCOURSE_FASHION_MNIST_DIR", raising=False)
    dirs = data.fashion_mnist_search_dirs()
    assert dirs[0] == data.DEBIAN_FASHION_MNIST_DIR
    assert dirs[1] == data._keras_home() / "datasets" / "fashion-mnist"
    monkeypatch.setenv("CVCOURSE_FASHION_MNIST_DIR", str(tmp_path))
    assert data.fashion_mnist_search_dirs() == [tmp_path]


@needs_fashion
@pytest.mark.parametrize(
    "damage, expected",
    [
        ("truncate", "header promises"),
        ("not-gzip", "not a readable gzip file"),
        ("bad-magic", "bad IDX magic"),
        ("unbalanced-labels", "not 10 balanced classes"),
    ],
)
def test_corrupt_files_raise_a_clear_error(tmp_path, monkeypatch, isolated_cache, damage, expected):
    folder = _copy_fashion_mnist(tmp_path / "fashion")
    if damage in ("truncate", "not-gzip", "bad-magic"):
        target = folder / FASHION_MNIST_FILES["x_test"]
        raw = gzip.decompress(target.read_bytes())
        if damage == "truncate":
            target.write_bytes(gzip.compress(raw[: len(raw) // 2]))
        elif damage == "not-gzip":
            target.write_bytes(raw[:1000])
        else:
            target.write_bytes(gzip.compress(struct.pack(">HBB", 0, 0x0D, 3) + raw[4:]))
    else:
        target = folder / FASHION_MNIST_FILES["y_test"]
        raw = bytearray(gzip.decompress(target.read_bytes()))
        raw[8:108] = bytes(100)  # relabel 100 test images as class 0
        target.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv("CVCOURSE_FASHION_MNIST_DIR", str(folder))
    with pytest.raises(CorruptDataError) as error:
        load_fashion_mnist(allow_download=False)
    assert expected in str(error.value)
    assert "reinstall" in str(error.value).lower()


@needs_fashion
def test_a_changed_source_file_invalidates_the_cache(tmp_path, monkeypatch, isolated_cache):
    folder = _copy_fashion_mnist(tmp_path / "fashion")
    monkeypatch.setenv("CVCOURSE_FASHION_MNIST_DIR", str(folder))
    load_fashion_mnist(allow_download=False)
    data._fashion_mnist.cache_clear()
    (folder / FASHION_MNIST_FILES["x_train"]).write_bytes(b"damaged after caching")
    with pytest.raises(CorruptDataError):
        load_fashion_mnist(allow_download=False)


# --- photos and textures ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_photos_are_uint8_rgb_or_grey_on_request(name):
    rgb = load_photo(name)
    grey = load_photo(name, grayscale=True)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert grey.dtype == np.uint8 and grey.shape == rgb.shape[:2]
    assert rgb.shape[0] >= 300 and rgb.shape[1] >= 300
    assert rgb.std() > 10  # a real photo, not a blank


def test_grey_conversion_uses_luma_weights():
    rgb = load_photo("astronaut").astype(float)
    grey = load_photo("astronaut", grayscale=True).astype(float)
    expected = rgb @ np.array([0.2125, 0.7154, 0.0721])
    assert np.abs(grey - expected).max() <= 0.5 + 1e-9


@pytest.mark.parametrize("name", sorted(TEXTURES))
def test_textures_are_512_square_uint8(name):
    texture = load_texture(name)
    assert texture.shape == (512, 512) and texture.dtype == np.uint8 and texture.std() > 5


def test_unknown_image_names_list_the_choices():
    with pytest.raises(ValueError, match="astronaut"):
        load_photo("mona-lisa")
    with pytest.raises(ValueError, match="gravel"):
        load_texture("marble")
