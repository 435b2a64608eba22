"""cvcourse.gradients: d objective / d images is right (finite differences), per image, uses the
model's current weights, and agrees across Keras backends on the same weights."""

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import subprocess_env
from cvcourse.gradients import input_gradient, value_and_input_gradient
from cvcourse.models import build_course_cnn

import keras


@pytest.fixture(autouse=True, scope="module")
def full_float32_precision():
    """These tests check arithmetic, so GPUs must not multiply in TF32 (10-bit mantissa), which
    they do by default on all three backends; on a CPU this changes nothing."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
        yield
        jax.config.update("jax_default_matmul_precision", None)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(False)
        yield
        tf.config.experimental.enable_tensor_float_32_execution(True)
    else:
        import torch

        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        yield
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def smooth_model(seed: int = 0) -> keras.Model:
    """A tiny differentiable-everywhere CNN (tanh, average pooling), so finite differences are exact
    to second order: images (N, 6, 6, 1) -> probabilities (N, 3)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3, padding="same", activation="tanh"),
            keras.layers.AveragePooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def log_probability(probabilities, labels):
    """Sum over the batch of log p(label): probabilities (N, K), labels (N,) -> scalar."""
    return keras.ops.sum(keras.ops.log(probabilities) * keras.ops.one_hot(labels, 3))


def finite_difference_gradient(model, images, labels, step=1e-2):
    """Centred differences of ``log_probability`` in every pixel, in float64 arithmetic on the
    float32 model outputs: (N, 6, 6, 1) -> same shape. Pixel k is moved in all N images at once
    (the images of a batch do not interact), so one forward pass covers every pixel."""
    n, pixels = len(images), images[0].size
    shifts = step * np.eye(pixels).reshape(pixels, 1, *images.shape[1:])
    # (pixels, N, ...) up and down copies, flattened into one batch of 2 * pixels * N images
    batch = np.concatenate([images[None] + shifts, images[None] - shifts]).reshape(-1, *images.shape[1:])
    p = keras.ops.convert_to_numpy(model(batch.astype(np.float32), training=False)).astype(np.float64)
    log_p = np.log(p[np.arange(len(batch)), np.tile(labels, 2 * pixels)]).reshape(2, pixels, n)
    return ((log_p[0] - log_p[1]) / (2 * step)).T.reshape(images.shape)


@pytest.fixture
def batch():
    rng = np.random.default_rng(1)
    return rng.random((3, 6, 6, 1)).astype(np.float32), np.array([0, 2, 1])


def test_the_gradient_matches_finite_differences(batch):
    images, labels = batch
    model = smooth_model()
    value, gradient = value_and_input_gradient(model, images, log_probability, labels)
    expected = finite_difference_gradient(model, images, labels)
    assert gradient.shape == images.shape and gradient.dtype == np.float32
    assert np.abs(gradient).max() > 1e-3, "a zero gradient would pass a loose check"
    np.testing.assert_allclose(gradient, expected, rtol=0, atol=2e-3 * np.abs(expected).max())
    p = keras.ops.convert_to_numpy(model(images))
    assert value == pytest.approx(np.log(p[np.arange(3), labels]).sum(), rel=1e-5)


def test_an_objective_without_targets_and_input_gradient_give_the_same_gradient(batch):
    images, labels = batch
    model = smooth_model()
    one_hot = keras.ops.one_hot(labels, 3)
    closed_over = input_gradient(model, images, lambda p: keras.ops.sum(keras.ops.log(p) * one_hot))
    with_targets = input_gradient(model, images, log_probability, labels)
    np.testing.assert_allclose(closed_over, with_targets, rtol=0, atol=1e-5 * np.abs(with_targets).max())


def test_each_image_gets_the_gradient_of_its_own_objective(batch):
    images, labels = batch
    model = smooth_model()
    together = input_gradient(model, images, log_probability, labels)
    for i in range(len(images)):
        alone = input_gradient(model, images[i : i + 1], log_probability, labels[i : i + 1])
        np.testing.assert_allclose(together[i : i + 1], alone, rtol=0, atol=1e-5 * np.abs(together).max())


def test_a_compiled_gradient_follows_new_targets_and_new_weights(batch):
    images, labels = batch
    model = smooth_model()
    before = input_gradient(model, images, log_probability, labels)
    other_labels = (labels + 1) % 3
    assert not np.allclose(input_gradient(model, images, log_probability, other_labels), before)
    model.set_weights(smooth_model(seed=5).get_weights())
    after = input_gradient(model, images, log_probability, labels)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(
        after, finite_difference_gradient(model, images, labels), atol=2e-3 * np.abs(after).max()
    )


def test_dropout_is_off_so_the_gradient_is_repeatable():
    keras.utils.set_random_seed(0)
    model = build_course_cnn(5)  # has a Dropout(0.3) layer
    images = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    score = lambda p: keras.ops.sum(p[:, 1])  # noqa: E731
    first, second = input_gradient(model, images, score), input_gradient(model, images, score)
    # Dropout would change about 30% of the features between calls; GPU kernels may differ in
    # the last bits from run to run.
    np.testing.assert_allclose(first, second, rtol=0, atol=1e-6 * np.abs(first).max())


def test_an_objective_that_is_not_a_scalar_is_refused(batch):
    images, _ = batch
    with pytest.raises(ValueError, match="scalar"):
        input_gradient(smooth_model(), images, lambda p: p[:, 0])


OTHER_BACKEND_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from cvcourse.models import build_course_cnn
    from cvcourse.gradients import value_and_input_gradient
    import keras

    weights, images, labels, out = sys.argv[1:]
    assert keras.backend.backend() == "{backend}", keras.backend.backend()
    model = build_course_cnn(5)
    model.load_weights(weights)
    def class_score(probabilities, labels):
        return keras.ops.sum(keras.ops.log(probabilities) * keras.ops.one_hot(labels, 5))
    value, gradient = value_and_input_gradient(model, np.load(images), class_score, np.load(labels))
    np.save(out, gradient)
    print(value)
    """
)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_another_backend_gives_the_same_gradient_on_the_same_weights(backend, tmp_path):
    # Both are pinned in pyproject.toml (jax in the dependencies, torch's CPU build in the test
    # extra): a missing one is a broken environment, never a skip.
    assert importlib.util.find_spec(backend) is not None, f"{backend} is not installed: make env"
    keras.utils.set_random_seed(3)
    model = build_course_cnn(5)
    rng = np.random.default_rng(3)
    images = rng.random((6, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 5, size=6)

    def class_score(probabilities, labels):
        return keras.ops.sum(keras.ops.log(probabilities) * keras.ops.one_hot(labels, 5))

    value, here = value_and_input_gradient(model, images, class_score, labels)
    model.save_weights(tmp_path / "cnn.weights.h5")
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    result = subprocess.run(
        [sys.executable, "-c", OTHER_BACKEND_SCRIPT.format(backend=backend), str(tmp_path / "cnn.weights.h5"),
         str(tmp_path / "images.npy"), str(tmp_path / "labels.npy"), str(tmp_path / "there.npy")],
        capture_output=True, text=True, timeout=300,
        env=subprocess_env(KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES=""),
    )
    assert result.returncode == 0, result.stderr
    there = np.load(tmp_path / "there.npy")
    assert float(result.stdout.split()[-1]) == pytest.approx(value, rel=1e-4)
    assert np.abs(here).max() > 0
    np.testing.assert_allclose(there, here, rtol=0, atol=1e-4 * np.abs(here).max())
