"""Model builders shared by the chapters, the homework and ``make gpu-check``.

Import :mod:`cvcourse.devices` (or this module, which does it) before ``keras``.

The *course CNN* is the one network the book keeps coming back to: the source network of the
transfer-learning chapter (trained on Fashion-MNIST classes 0-4 and shipped with the course, see
:mod:`cvcourse.source_network`), the network that chapter 11 takes apart, and the workload that
``make gpu-check`` times. It is written against Keras 3 only, so it runs on the TensorFlow, JAX
and PyTorch backends.
"""

from __future__ import annotations

from cvcourse import devices as _devices  # noqa: F401  (sets the backend before Keras loads)

import keras

__all__ = ["COURSE_CNN_INPUT_SHAPE", "FEATURE_LAYER", "build_course_cnn"]

#: Input of the course CNN: one 28x28 greyscale image, float in [0, 1], channels last.
COURSE_CNN_INPUT_SHAPE = (28, 28, 1)

#: Name of the layer whose output is the 128-number feature vector used for transfer learning.
FEATURE_LAYER = "features"


def build_course_cnn(num_classes: int = 10, *, name: str = "course_cnn") -> keras.Sequential:
    """Build the (untrained) course CNN.

    Layers, with output shapes for a batch of N images::

        input           (N, 28, 28, 1)
        conv1  5x5x32   (N, 28, 28, 32)  ReLU, "same" padding
        pool1  2x2      (N, 14, 14, 32)
        conv2  3x3x64   (N, 14, 14, 64)  ReLU
        pool2  2x2      (N, 7, 7, 64)
        flatten         (N, 3136)
        features        (N, 128)         dense, ReLU: the transferable representation
        dropout 0.3     (N, 128)         training only
        classifier      (N, num_classes) dense, softmax

    Parameters
    ----------
    num_classes : int
        Number of outputs of the final softmax layer.
    name : str
        The model's name.

    Returns
    -------
    keras.Sequential
        About 422 000 parameters for 5 classes (1.7 MB as float32). Weights are initialised by
        Keras' defaults (Glorot uniform) from the backend's current seed, so call
        :func:`cvcourse.devices.set_seed` first for a repeatable network.
    """
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=COURSE_CNN_INPUT_SHAPE, name="image"),
            layers.Conv2D(32, 5, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name=FEATURE_LAYER),
            layers.Dropout(0.3, name="dropout"),
            layers.Dense(int(num_classes), activation="softmax", name="classifier"),
        ],
        name=name,
    )
