"""The shipped transfer-learning source network: its file, its checksum, its loader, and a
retraining from scratch that lands within 1 point of it."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import subprocess_env
from cvcourse import source_network
from cvcourse.data import load_fashion_mnist
from cvcourse.models import FEATURE_LAYER, build_course_cnn
from cvcourse.source_network import (
    RECORD_PATH,
    SOURCE_CLASSES,
    TARGET_CLASSES,
    WEIGHTS_PATH,
    SourceNetworkError,
    fashion_mnist_classes,
    feature_extractor,
    heldout_accuracy,
    load_source_network,
    read_record,
    sha256_of,
)


@pytest.fixture(scope="module")
def shipped_network():
    return load_source_network()


@pytest.fixture(autouse=True)
def offline_and_isolated(isolated_cache, monkeypatch):
    """Every test reads Fashion-MNIST from the local copy into an empty cache: never the user's
    ~/.cache/cvcourse, never a download."""
    monkeypatch.setenv("CVCOURSE_OFFLINE", "1")
    return isolated_cache


def test_the_shipped_weights_are_small_and_match_their_recorded_checksum():
    record = read_record()
    assert WEIGHTS_PATH.stat().st_size < 5 * 1024 * 1024
    assert WEIGHTS_PATH.stat().st_size == record["bytes"]
    assert sha256_of(WEIGHTS_PATH) == record["sha256"]
    assert record["classes"] == list(SOURCE_CLASSES)


def test_the_shipped_network_scores_its_recorded_heldout_accuracy(shipped_network):
    """Same weights, same 5 000 test images: the accuracy may differ only by float rounding
    flipping a near-tie (at most 2 images here)."""
    accuracy = heldout_accuracy(shipped_network)
    assert accuracy == pytest.approx(read_record()["heldout_accuracy"], abs=0.0004)
    assert accuracy > 0.9  # classes 0-4 include the hard shirt-like trio; chance is 0.2


def test_the_feature_extractor_maps_images_to_128_features_with_the_networks_weights(shipped_network):
    images, labels = fashion_mnist_classes(TARGET_CLASSES, "test")
    extractor = feature_extractor(shipped_network)
    features = extractor.predict(images[:7], verbose=0)
    assert features.shape == (7, 128)
    assert (features >= 0).all()  # ReLU outputs
    dense = shipped_network.get_layer(FEATURE_LAYER)
    kernel, bias = dense.get_weights()
    flat = shipped_network.get_layer("flatten").output
    import keras

    flattened = keras.Model(shipped_network.inputs, flat).predict(images[:7], verbose=0)
    np.testing.assert_allclose(features, np.maximum(flattened @ kernel + bias, 0), rtol=1e-4, atol=1e-4)


def test_fashion_mnist_classes_relabels_in_the_given_order_and_rejects_bad_requests():
    images, labels = fashion_mnist_classes((9, 5), "test")
    assert images.shape == (2000, 28, 28, 1) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert np.bincount(labels).tolist() == [1000, 1000]
    _, (x_test, y_test) = load_fashion_mnist()
    first_boot = np.flatnonzero(y_test == 9)[0]
    np.testing.assert_allclose(images[np.flatnonzero(labels == 0)[0], :, :, 0], x_test[first_boot] / 255.0, rtol=1e-6)
    for bad in ([], [3, 3], [10]):
        with pytest.raises(ValueError, match="distinct Fashion-MNIST labels"):
            fashion_mnist_classes(bad)
    with pytest.raises(ValueError, match="split"):
        fashion_mnist_classes(SOURCE_CLASSES, "validation")


def test_a_missing_file_gets_a_clear_error(tmp_path):
    with pytest.raises(SourceNetworkError, match="not found.*git checkout cvcourse/weights"):
        load_source_network(tmp_path / "nothing.weights.h5")


def _damaged_copy(folder):
    damaged = folder / "source_cnn.weights.h5"
    shutil.copyfile(WEIGHTS_PATH, damaged)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte inside the weights: HDF5 may still read it
    damaged.write_bytes(bytes(data))
    return damaged, bytes(data)


def test_a_damaged_copy_fails_its_checksum_and_is_left_untouched(tmp_path):
    damaged, data = _damaged_copy(tmp_path)
    with pytest.raises(SourceNetworkError, match="SHA-256 .* expected .*damaged or is another network's"):
        load_source_network(damaged, sha256=read_record()["sha256"])
    assert damaged.read_bytes() == data


def test_the_default_load_checks_the_shipped_file_against_its_record(tmp_path, monkeypatch):
    """``load_source_network()`` with no argument verifies the shipped file by itself: a damaged
    file in the shipped file's place is refused, an intact copy loads."""
    damaged, data = _damaged_copy(tmp_path)
    monkeypatch.setattr(source_network, "WEIGHTS_PATH", damaged)
    with pytest.raises(SourceNetworkError, match=f"SHA-256 {source_network.sha256_of(damaged)}, expected "
                                                 f"{read_record()['sha256']}"):
        load_source_network()
    assert damaged.read_bytes() == data
    intact = tmp_path / "intact" / WEIGHTS_PATH.name
    intact.parent.mkdir()
    shutil.copyfile(WEIGHTS_PATH, intact)
    monkeypatch.setattr(source_network, "WEIGHTS_PATH", intact)
    assert load_source_network().count_params() == build_course_cnn(5).count_params()


@pytest.mark.parametrize("kind", ["not hdf5", "another architecture", "truncated"])
def test_a_file_that_is_not_the_course_cnn_is_refused(tmp_path, kind):
    wrong = tmp_path / "wrong.weights.h5"
    if kind == "not hdf5":
        wrong.write_bytes(b"these are not weights\n" * 100)
    elif kind == "another architecture":
        build_course_cnn(10).save_weights(wrong)  # 10 outputs where the source network has 5
    else:
        wrong.write_bytes(WEIGHTS_PATH.read_bytes()[:100_000])
    with pytest.raises(SourceNetworkError, match="does not hold the course CNN's weights"):
        load_source_network(wrong)


def test_an_unreadable_record_is_reported(tmp_path):
    broken = tmp_path / "source_cnn.json"
    broken.write_text("{not json")
    with pytest.raises(SourceNetworkError, match="cannot read the source network's record"):
        read_record(broken)


@pytest.mark.slow  # a full retraining, about 80 s: make test-slow (CI's make test leaves it out)
def test_the_training_script_reproduces_the_shipped_network_within_one_point(tmp_path, repo_root):
    """Retrain from scratch with the course's script (about 80 s on 2 CPU cores) and compare the
    held-out accuracy with the shipped network's; then load the new weights by their checksum."""
    env = subprocess_env(unset=("KERAS_BACKEND",), CVCOURSE_OFFLINE="1",
                         CVCOURSE_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run(
        [sys.executable, "-m", "cvcourse.train_source_network", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=repo_root, timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    record = json.loads((tmp_path / RECORD_PATH.name).read_text())
    shipped = read_record()
    assert record["training_settings"] == shipped["training_settings"]
    assert abs(record["heldout_accuracy"] - shipped["heldout_accuracy"]) <= 0.01
    retrained = load_source_network(tmp_path / WEIGHTS_PATH.name, sha256=record["sha256"])
    assert heldout_accuracy(retrained) == pytest.approx(record["heldout_accuracy"], abs=0.0004)
