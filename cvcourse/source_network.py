"""The course's pretrained source network for transfer learning, and how to load it.

Pretrained ImageNet weights cannot be downloaded on the machines that build this course, so the
course trains its own: the course CNN (:func:`cvcourse.models.build_course_cnn`) trained on the
30 000 Fashion-MNIST training images of classes 0-4 (T-shirt/top, trouser, pullover, dress, coat).
Its weights ship with the library (``cvcourse/weights/source_cnn.weights.h5``, 1.7 MB) next to a
record (``source_cnn.json``) of their SHA-256 checksum, the training settings and the accuracy on
the 5 000 held-out test images of those classes. ``python -m cvcourse.train_source_network``
retrains it from scratch.

The transfer-learning chapter and Homework 5 use it on the *target* classes 5-9 (sandal, shirt,
sneaker, bag, ankle boot), which the network has never seen::

    from cvcourse.source_network import load_source_network, feature_extractor
    network = load_source_network()            # checks the checksum first
    features = feature_extractor(network)      # images (N, 28, 28, 1) -> features (N, 128)
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from cvcourse.data import load_fashion_mnist
from cvcourse.models import FEATURE_LAYER, build_course_cnn

import keras

__all__ = [
    "SOURCE_CLASSES",
    "TARGET_CLASSES",
    "WEIGHTS_PATH",
    "RECORD_PATH",
    "TRAINING_SETTINGS",
    "SourceNetworkError",
    "fashion_mnist_classes",
    "train_source_network",
    "heldout_accuracy",
    "sha256_of",
    "read_record",
    "load_source_network",
    "feature_extractor",
]

#: Fashion-MNIST classes the source network is trained on (T-shirt/top ... coat).
SOURCE_CLASSES = (0, 1, 2, 3, 4)
#: Classes left for the target task (sandal, shirt, sneaker, bag, ankle boot).
TARGET_CLASSES = (5, 6, 7, 8, 9)

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "source_cnn.weights.h5"
RECORD_PATH = WEIGHTS_PATH.with_name("source_cnn.json")

#: How the shipped network was trained. Adam's learning rate decays linearly to a tenth of its
#: start over the run, so that the last epochs settle instead of hopping between minima (this
#: keeps a retrained network within a fraction of a point of the shipped one).
TRAINING_SETTINGS = {"seed": 0, "epochs": 4, "batch_size": 128, "learning_rate": 1e-3, "final_learning_rate": 1e-4}


#: The remedy every SourceNetworkError ends with.
_HOW_TO_FIX = (
    "Restore the shipped files with `git checkout cvcourse/weights`, or retrain them with "
    "`python -m cvcourse.train_source_network`."
)


class SourceNetworkError(RuntimeError):
    """The source network's weights file is missing, damaged, or not the course CNN's.

    (Missing Fashion-MNIST raises :class:`cvcourse.data.DataError` instead.)
    """


def fashion_mnist_classes(classes, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images of some classes, ready for the course CNN.

    Parameters
    ----------
    classes : sequence of int
        Fashion-MNIST labels to keep, e.g. :data:`TARGET_CLASSES`.
    split : {"train", "test"}
        The 60 000 training or the 10 000 test images.

    Returns
    -------
    images : float32 array, shape (N, 28, 28, 1), values in [0, 1]
    labels : int64 array, shape (N,)
        Relabelled 0 .. len(classes) - 1 in the order of ``classes``, so they index the
        network's outputs.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes) or not all(0 <= c <= 9 for c in classes):
        raise ValueError(f"classes must be distinct Fashion-MNIST labels 0-9, got {classes!r}")
    train, test = load_fashion_mnist()
    x, y = train if split == "train" else test
    keep = np.isin(y, classes)
    relabel = np.full(10, -1, dtype=np.int64)
    relabel[classes] = np.arange(len(classes))
    return (x[keep].astype(np.float32) / 255.0)[..., None], relabel[y[keep]]


def train_source_network(*, seed: int | None = None, epochs: int | None = None, verbose: int = 0):
    """Train the source network from scratch, as the shipped one was trained.

    Parameters
    ----------
    seed, epochs : int, optional
        Override :data:`TRAINING_SETTINGS` (for experiments; the defaults reproduce the shipped
        network).
    verbose : int
        Passed to ``model.fit``.

    Returns
    -------
    model : keras.Sequential
        The trained 5-class course CNN.
    seconds : float
        Wall-clock training time.
    """
    settings = dict(TRAINING_SETTINGS)
    if seed is not None:
        settings["seed"] = seed
    if epochs is not None:
        settings["epochs"] = epochs
    x, y = fashion_mnist_classes(SOURCE_CLASSES, "train")
    keras.utils.set_random_seed(settings["seed"])
    model = build_course_cnn(len(SOURCE_CLASSES), name="source_cnn")
    steps = settings["epochs"] * int(np.ceil(len(x) / settings["batch_size"]))
    schedule = keras.optimizers.schedules.PolynomialDecay(
        settings["learning_rate"], decay_steps=steps, end_learning_rate=settings["final_learning_rate"]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    start = time.perf_counter()
    model.fit(x, y, epochs=settings["epochs"], batch_size=settings["batch_size"], verbose=verbose)
    return model, time.perf_counter() - start


def heldout_accuracy(model) -> float:
    """Accuracy of a source network on the 5 000 Fashion-MNIST test images of classes 0-4."""
    x, y = fashion_mnist_classes(SOURCE_CLASSES, "test")
    return float(np.mean(model.predict(x, batch_size=500, verbose=0).argmax(axis=1) == y))


def sha256_of(path) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_record(path=RECORD_PATH) -> dict:
    """The record written next to the shipped weights: checksum, settings, held-out accuracy."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise SourceNetworkError(
            f"cannot read the source network's record {path}: {error}. {_HOW_TO_FIX}"
        ) from error


def load_source_network(path=None, *, sha256: str | None = None):
    """Load the trained source network (5-class course CNN).

    Parameters
    ----------
    path : str or Path, optional
        A ``.weights.h5`` file. Defaults to the shipped :data:`WEIGHTS_PATH`, whose checksum is
        read from :data:`RECORD_PATH`.
    sha256 : str, optional
        Expected SHA-256 of ``path``. Checked when given, and always for the shipped file.

    Returns
    -------
    keras.Sequential
        Input (N, 28, 28, 1) float in [0, 1]; output (N, 5) class probabilities for
        :data:`SOURCE_CLASSES`.

    Raises
    ------
    SourceNetworkError
        The file is missing, its checksum differs, or it does not hold the course CNN's weights.
    """
    if path is None:
        path, sha256 = WEIGHTS_PATH, read_record()["sha256"]
    path = Path(path)
    if not path.is_file():
        raise SourceNetworkError(f"source network weights not found: {path}. {_HOW_TO_FIX}")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256.lower():
            raise SourceNetworkError(
                f"source network weights {path} have SHA-256 {actual}, expected {sha256}: "
                f"the file is damaged or is another network's. {_HOW_TO_FIX}"
            )
    model = build_course_cnn(len(SOURCE_CLASSES), name="source_cnn")
    try:
        model.load_weights(path)
    except Exception as error:  # h5py, Keras and OS errors all mean: not our weights
        raise SourceNetworkError(
            f"{path} does not hold the course CNN's weights ({type(error).__name__}: {error}). {_HOW_TO_FIX}"
        ) from error
    return model


def feature_extractor(model) -> keras.Model:
    """The part of a course CNN up to its feature layer.

    Returns a model mapping images (N, 28, 28, 1) to features (N, 128): the ReLU outputs of the
    ``features`` dense layer, before dropout and the classifier. It shares its layers (and so
    its weights) with ``model``.
    """
    try:
        features = model.get_layer(FEATURE_LAYER).output
    except ValueError as error:
        raise ValueError(f"{model.name} has no layer named {FEATURE_LAYER!r}: not a course CNN") from error
    return keras.Model(model.inputs, features, name=f"{model.name}_features")
