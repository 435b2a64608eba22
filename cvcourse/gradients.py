"""Gradients of a model's outputs with respect to its *input images*, on any Keras backend.

Training differentiates a loss with respect to the weights; the visualisation and attack methods
of chapter 11 (class-score maximization, adversarial and fooling images, projecting a unit back to
the pixels) differentiate with respect to the image instead, with the weights fixed. Keras 3 has
no backend-neutral call for that, so this module gives one::

    from cvcourse.gradients import input_gradient
    import keras

    def class_score(scores, classes):             # scores (N, K), classes (N,) int
        return keras.ops.sum(scores * keras.ops.one_hot(classes, 5))   # a scalar
    grad = input_gradient(model, images, class_score, classes)   # NumPy, shape of ``images``

It works on the TensorFlow backend (``tf.GradientTape`` in a ``tf.function``), the JAX backend
(``jax.value_and_grad`` through the model's ``stateless_call``, compiled with ``jax.jit``) and the
PyTorch backend (autograd), chosen from ``keras.backend.backend()``, so a chapter that uses it
runs unchanged on a GPU machine with JAX and no TensorFlow.

The model is always called with ``training=False`` (dropout off, batch-normalisation statistics
frozen). The images of a batch then do not interact, so the gradient of a *sum* of per-image
objectives is, image by image, the gradient of each image's own objective: one call handles a
whole batch.

On TensorFlow and JAX the gradient function is traced once per (model, objective) pair and input
shape, then reused, which makes repeated calls (gradient ascent loops) fast. Anything that changes
from call to call must therefore reach the objective through ``targets``, not through variables
that it closes over: those are read when it is first traced. Define the objective once (a
function, not a new ``lambda`` per call) so that its compiled gradient is found again. The model's
current weights are always used.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from cvcourse import devices as _devices  # noqa: F401  (sets the backend before Keras loads)

import keras

__all__ = ["input_gradient", "value_and_input_gradient"]

# (id(model), id(objective), backend) -> (model, objective, compiled function). The model and the
# objective are kept alive with their entry, so that their ids cannot be reused by other objects.
_COMPILED: OrderedDict = OrderedDict()
_MAX_COMPILED = 32


def _scalar(value):
    """Check that the objective returned a single number; return it with shape ()."""
    shape = tuple(keras.ops.shape(value))
    if shape not in ((), (1,)):
        raise ValueError(
            "objective must return a scalar tensor (sum or average per-image values with "
            f"keras.ops.sum / keras.ops.mean), got shape {shape}"
        )
    return keras.ops.reshape(value, ())


def _tensorflow(model, objective):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def value_and_gradient(images, targets):
        with tf.GradientTape() as tape:
            tape.watch(images)
            value = _scalar(objective(model(images, training=False), targets))
        return value, tape.gradient(value, images)

    def run(images, targets):
        return value_and_gradient(tf.convert_to_tensor(images), tf.convert_to_tensor(targets))

    return run


def _jax(model, objective):
    import jax

    def value_of(trainable, non_trainable, images, targets):
        outputs, _ = model.stateless_call(trainable, non_trainable, images, training=False)
        return _scalar(objective(outputs, targets))

    value_and_gradient = jax.jit(jax.value_and_grad(value_of, argnums=2))

    def run(images, targets):
        # The weights are arguments, not constants of the compiled function: it sees their
        # current values on every call.
        trainable = [variable.value for variable in model.trainable_variables]
        non_trainable = [variable.value for variable in model.non_trainable_variables]
        return value_and_gradient(trainable, non_trainable, jax.numpy.asarray(images), jax.numpy.asarray(targets))

    return run


def _torch(model, objective):
    import torch

    def run(images, targets):
        x = keras.ops.convert_to_tensor(images).detach().requires_grad_(True)
        value = _scalar(objective(model(x, training=False), keras.ops.convert_to_tensor(targets)))
        (gradient,) = torch.autograd.grad(value, x)
        return value.detach(), gradient

    return run


_BACKENDS = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


def _gradient_function(model, objective, with_targets: bool):
    backend = keras.backend.backend()
    if backend not in _BACKENDS:
        raise NotImplementedError(f"input gradients are implemented for {sorted(_BACKENDS)}, not {backend!r}")
    key = (id(model), id(objective), with_targets, backend)
    if key in _COMPILED:
        _COMPILED.move_to_end(key)
        return _COMPILED[key][2]
    call = objective if with_targets else (lambda outputs, targets: objective(outputs))
    function = _BACKENDS[backend](model, call)
    _COMPILED[key] = (model, objective, function)
    while len(_COMPILED) > _MAX_COMPILED:
        _COMPILED.popitem(last=False)
    return function


def value_and_input_gradient(
    model: keras.Model, images, objective: Callable[..., object], targets=None
) -> tuple[float, np.ndarray]:
    """The value of ``objective(model(images)[, targets])`` and its gradient with respect to ``images``.

    Parameters
    ----------
    model : keras.Model
        A built model mapping a batch of inputs of shape (N, ...) to outputs, e.g. the course CNN:
        images (N, 28, 28, 1) -> class probabilities (N, K). It is called with ``training=False``;
        its weights are not changed.
    images : array-like of shape (N, ...)
        The input batch (NumPy or a backend tensor), e.g. (N, 28, 28, 1). Converted to float32.
    objective : callable
        ``objective(outputs)``, or ``objective(outputs, targets)`` when ``targets`` is given: maps
        the model's outputs (a backend tensor, e.g. of shape (N, K)) to a **scalar** tensor. Build
        it from ``keras.ops`` so that it works on every backend, e.g.
        ``lambda scores, classes: keras.ops.sum(scores * keras.ops.one_hot(classes, 5))``. For
        per-image objectives return their sum: each image's gradient is then the gradient of its
        own objective.
    targets : array-like, optional
        Anything the objective needs that changes between calls (labels of shape (N,), one-hot
        rows (N, K), masks ...), passed to it as a backend tensor.

    Returns
    -------
    value : float
        The objective's value.
    gradient : float32 ndarray of the same shape as ``images``
        d objective / d images.

    Raises
    ------
    ValueError
        ``objective`` did not return a scalar.
    NotImplementedError
        The Keras backend is not TensorFlow, JAX or PyTorch.
    """
    x = np.asarray(keras.ops.convert_to_numpy(images), dtype=np.float32)
    with_targets = targets is not None
    t = np.asarray(keras.ops.convert_to_numpy(targets)) if with_targets else np.zeros(0, dtype=np.float32)
    value, gradient = _gradient_function(model, objective, with_targets)(x, t)
    return float(keras.ops.convert_to_numpy(value)), np.asarray(keras.ops.convert_to_numpy(gradient), dtype=np.float32)


def input_gradient(model: keras.Model, images, objective: Callable[..., object], targets=None) -> np.ndarray:
    """d ``objective(model(images)[, targets])`` / d ``images``, as a NumPy array.

    Parameters
    ----------
    model : keras.Model
        Maps inputs (N, ...) to outputs, e.g. images (N, 28, 28, 1) -> (N, K); called with
        ``training=False``.
    images : array-like of shape (N, ...)
        The input batch.
    objective : callable
        Maps the model's outputs (and ``targets``, when given) to a scalar tensor; see
        :func:`value_and_input_gradient`.
    targets : array-like, optional
        Passed to the objective as a tensor, e.g. labels of shape (N,).

    Returns
    -------
    float32 ndarray of the same shape as ``images``
    """
    return value_and_input_gradient(model, images, objective, targets)[1]
