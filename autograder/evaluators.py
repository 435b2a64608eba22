"""Grader-side evaluators: judge a recorded value in the grader's own process.

A hidden test records what the student's code *produced* (weights, an index list, a number);
when the solution's record of that key names an evaluator (``evaluate="NAME"`` and its options),
the grader calls it here instead of comparing with the solution's value. Evaluators that measure
a trained model load their data through the course library (:mod:`cvcourse.splits`) and compute
the predictions with their own code, so held-out labels never exist in the process that runs
the student's code, and nothing the student's ``predict`` returns is used.

Each evaluator is ``evaluate(value, options, context) -> str | None``: None when the value
passes, otherwise a fixed sentence saying why (for the instructor's run log and the results
file; students see a generic message). It must fail, never raise, on wrong shapes, NaN, infinite
or huge values: :func:`evaluate` turns any exception into a failure with a reason.

``context.submitted`` holds the other records of the same test cell from the same run, and
``context.reference`` the solution's, for evaluators that relate several records.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .records import describe


@dataclass(frozen=True)
class Context:
    submitted: dict[str, object]  # key -> value: this run's records of the same test cell
    reference: dict[str, object]  # key -> value: the solution's records of the same test cell


Evaluator = Callable[[object, dict, Context], "str | None"]
EVALUATORS: dict[str, Evaluator] = {}


def evaluator(function: Evaluator) -> Evaluator:
    """Register ``function`` under its own name."""
    EVALUATORS[function.__name__] = function
    return function


def evaluate(name: str, value: object, options: dict, context: Context) -> str | None:
    """Run a registered evaluator; an unknown name or an exception is a failure with a reason."""
    function = EVALUATORS.get(name)
    if function is None:
        return f"unknown evaluator {name!r}"
    try:
        with np.errstate(all="ignore"):
            return function(value, options, context)
    except Exception as error:  # noqa: BLE001 - a bad value must fail its test, never the run
        return f"{name} could not evaluate the value ({type(error).__name__})"


# --- helpers ---------------------------------------------------------------------------------


def _array(value: object, shape: tuple[int | None, ...], what: str) -> np.ndarray:
    """``value`` as a finite float64 array of ``shape`` (None: any size), or ValueError."""
    if not isinstance(value, np.ndarray):
        raise EvaluationFailure(f"{what} must be one array, got a {describe(value)}")
    if value.ndim != len(shape) or any(want is not None and got != want for got, want in zip(value.shape, shape)):
        raise EvaluationFailure(f"{what} has shape {value.shape}, expected {shape}")
    array = value.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise EvaluationFailure(f"{what} holds NaN or infinite values")
    return array


def _parameters(value: object, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or set(value) != set(names):
        raise EvaluationFailure(f"expected a dict with {list(names)}, got a {describe(value)}")
    return value


class EvaluationFailure(ValueError):
    """The value cannot be evaluated; the message is the reason."""


def _accuracy(predictions: np.ndarray, labels: np.ndarray, at_least: float, what: str) -> str | None:
    accuracy = float(np.mean(predictions == labels))
    return None if accuracy >= at_least else f"{what}: accuracy {accuracy:.4f} < {at_least}"


def _failing(function: Evaluator) -> Evaluator:
    """Turn :class:`EvaluationFailure` into the returned reason."""
    @functools.wraps(function)
    def wrapper(value, options, context):
        try:
            return function(value, options, context)
        except EvaluationFailure as failure:
            return str(failure)
    return wrapper


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and a.dtype.kind == b.dtype.kind and bool(np.array_equal(a, b, equal_nan=True))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    return False


def _same_structure(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_structure(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same_structure(a[k], b[k]) for k in a)
    return False


# --- relations between records ----------------------------------------------------------------


@evaluator
def equal_to_record(value, options, context):
    """Loads nothing. Passes when ``value`` equals, exactly (shapes, kinds and values), the value
    recorded under ``options["other"]`` in the same test cell of the same run: the same seed
    gives the same result."""
    other = context.submitted.get(str(options["other"]))
    if other is None:
        return f"{options['other']} was not recorded"
    return None if _same(value, other) else f"differs from {options['other']} (the same seed must give the same result)"


@evaluator
def differs_from_record(value, options, context):
    """Loads nothing. Passes when ``value`` has the structure of the value recorded under
    ``options["other"]`` in the same run, but not its values: another seed gives another result."""
    other = context.submitted.get(str(options["other"]))
    if other is None:
        return f"{options['other']} was not recorded"
    if not _same_structure(value, other):
        return f"its shape differs from {options['other']}"
    return f"equals {options['other']} (another seed must give another result)" if _same(value, other) else None


@evaluator
def shaped_like_solution(value, options, context):
    """Loads nothing. Passes when the value has the structure (type and shapes) of the
    solution's value of the same key and holds only finite numbers. For a record that other
    evaluators relate to (e.g. ``equal_to_record``) but that is not compared with the solution's
    values itself (two correct trainers may differ in the last bits)."""
    key = str(options.get("key", ""))
    expected = context.reference.get(key) if key else None
    if expected is not None and not _same_structure(value, expected):
        return "its structure differs from the solution's"
    arrays = [value] if isinstance(value, np.ndarray) else list(value.values()) if isinstance(value, dict) else value
    return None if all(np.all(np.isfinite(a.astype(np.float64))) for a in arrays) else "it holds NaN or infinite values"


@evaluator
@_failing
def in_range(value, options, context):
    """Loads nothing. Passes when the value is one finite number with
    ``options["low"] <= value <= options["high"]`` (either bound may be absent)."""
    number = _array(value, (), "the value")
    low, high = options.get("low"), options.get("high")
    if low is not None and number < float(low):
        return f"{float(number):.6g} < {low}"
    if high is not None and number > float(high):
        return f"{float(number):.6g} > {high}"
    return None


# --- trained models on held-out data ------------------------------------------------------------


@evaluator
@_failing
def linear_classifier_accuracy(value, options, context):
    """Loads the held-out part of the digits (``cvcourse.splits.digits_part("heldout",
    options["split_seed"])``: 540 images, 64 pixels / 16 and a bias feature). Computes
    ``argmax(X @ W.T)`` with the recorded ``W`` of shape (C, 65). Passes when the accuracy is at
    least ``options["at_least"]``."""
    from cvcourse.splits import digits_part

    X, y = digits_part("heldout", int(options["split_seed"]))
    W = _array(value, (None, X.shape[1]), "W")
    if not 2 <= W.shape[0] <= 1000:
        raise EvaluationFailure(f"W has {W.shape[0]} classes")
    return _accuracy(np.argmax(X @ W.T, axis=1), y, float(options["at_least"]), "held-out digits")


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # the logistic function, without overflow


@evaluator
@_failing
def sigmoid_net_accuracy(value, options, context):
    """Loads the held-out digits as :func:`linear_classifier_accuracy` does. Computes the
    lecture's network, ``z = sigmoid(W1 x)``, ``y = sigmoid(W2 z)`` (no biases: x carries the
    constant feature), from the recorded ``{"W1": (H, 65), "W2": (10, H)}``, and predicts
    ``argmax(y)``. Passes when the accuracy is at least ``options["at_least"]``."""
    from cvcourse.splits import digits_part

    parameters = _parameters(value, ("W1", "W2"))
    X, y = digits_part("heldout", int(options["split_seed"]))
    W1 = _array(parameters["W1"], (None, X.shape[1]), "W1")
    W2 = _array(parameters["W2"], (10, W1.shape[0]), "W2")
    if not 1 <= W1.shape[0] <= 4096:
        raise EvaluationFailure(f"W1 has {W1.shape[0]} hidden units")
    outputs = _sigmoid(_sigmoid(X @ W1.T) @ W2.T)
    return _accuracy(np.argmax(outputs, axis=1), y, float(options["at_least"]), "held-out digits")


@evaluator
@_failing
def two_layer_net_accuracy(value, options, context):
    """Loads the 10 000 Fashion-MNIST test images as flat rows in [0, 1]
    (``cvcourse.splits.fashion_mnist_part("test")``). Computes affine, ReLU, affine from the
    recorded ``{"W1": (784, H), "b1": (H,), "W2": (H, 10), "b2": (10,)}`` and predicts the
    argmax of the scores. Passes when the accuracy is at least ``options["at_least"]``."""
    from cvcourse.splits import fashion_mnist_part

    parameters = _parameters(value, ("W1", "b1", "W2", "b2"))
    W1 = _array(parameters["W1"], (784, None), "W1")
    hidden = W1.shape[1]
    if not 1 <= hidden <= 4096:
        raise EvaluationFailure(f"W1 has {hidden} hidden units")
    b1 = _array(parameters["b1"], (hidden,), "b1")
    W2 = _array(parameters["W2"], (hidden, 10), "W2")
    b2 = _array(parameters["b2"], (10,), "b2")
    X, y = fashion_mnist_part("test")
    scores = np.maximum(0.0, X @ W1 + b1) @ W2 + b2
    return _accuracy(np.argmax(scores, axis=1), y, float(options["at_least"]), "Fashion-MNIST test images")


@functools.lru_cache(maxsize=1)
def _target_test_images() -> tuple[np.ndarray, np.ndarray]:
    from cvcourse.source_network import TARGET_CLASSES, fashion_mnist_classes

    return fashion_mnist_classes(TARGET_CLASSES, "test")


@functools.lru_cache(maxsize=8)
def _source_features(layer: str) -> np.ndarray:
    """The shipped source network's ``layer`` output on the 5 000 target test images, flattened."""
    import keras

    from cvcourse.source_network import load_source_network

    network = load_source_network()
    extractor = keras.Model(network.inputs, network.get_layer(layer).output)
    images, _ = _target_test_images()
    features = extractor.predict(images, batch_size=500, verbose=0)
    return np.asarray(features, dtype=np.float64).reshape(len(images), -1)


@evaluator
@_failing
def feature_svm_accuracy(value, options, context):
    """Loads the shipped source network (``cvcourse.source_network.load_source_network``, its
    checksum checked) and the 5 000 Fashion-MNIST test images of the target classes 5-9, and
    computes the features of layer ``options["layer"]`` with the grader's own forward pass
    (flattened). Predicts ``argmax(F @ W.T + b)`` from the recorded ``{"W": (5, D), "b": (5,)}``.
    Passes when the accuracy is at least ``options["at_least"]``."""
    parameters = _parameters(value, ("W", "b"))
    _, labels = _target_test_images()
    features = _source_features(str(options["layer"]))
    W = _array(parameters["W"], (5, features.shape[1]), "W")
    b = _array(parameters["b"], (5,), "b")
    return _accuracy(np.argmax(features @ W.T + b, axis=1), labels, float(options["at_least"]),
                     "target test images")


@evaluator
@_failing
def transfer_model_accuracy(value, options, context):
    """Builds the grader's own ``cvcourse.models.build_course_cnn(options["num_classes"])``,
    loads the recorded weight list (the student's model's ``get_weights()``, same order), and
    measures it on the 5 000 Fashion-MNIST test images of the target classes 5-9. Passes when
    the accuracy is at least ``options["at_least"]``."""
    from cvcourse.models import build_course_cnn

    if not isinstance(value, list):
        raise EvaluationFailure(f"expected the model's weight list, got a {describe(value)}")
    model = build_course_cnn(int(options["num_classes"]))
    expected = [tuple(w.shape) for w in model.get_weights()]
    got = [tuple(w.shape) for w in value]
    if got != expected:
        raise EvaluationFailure(f"{len(got)} weight arrays of shapes {got[:3]}..., expected the course "
                                f"CNN's {len(expected)} arrays")
    if not all(np.all(np.isfinite(w)) for w in value):
        raise EvaluationFailure("the weights hold NaN or infinite values")
    model.set_weights([w.astype(np.float32) for w in value])
    images, labels = _target_test_images()
    probabilities = model.predict(images, batch_size=500, verbose=0)
    return _accuracy(np.argmax(probabilities, axis=1), labels, float(options["at_least"]), "target test images")


@evaluator
@_failing
def subset_of_inputs(value, options, context):
    """Loads nothing. ``value`` is ``{"x": (n, ...), "y": (n,)}``, a subset drawn from inputs
    that the solution's run recorded under ``options["images"]`` and ``options["labels"]`` in the
    same cell. Passes when every (x[i], y[i]) is a distinct pair of the inputs (labels aligned
    with their images) and every class of the inputs occurs exactly ``options["per_class"]``
    times."""
    parameters = _parameters(value, ("x", "y"))
    images, labels = context.reference.get(str(options["images"])), context.reference.get(str(options["labels"]))
    if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
        raise EvaluationFailure("the inputs were not recorded by the solution")
    x = _array(parameters["x"], (None, *images.shape[1:]), "x")
    y = _array(parameters["y"], (x.shape[0],), "y")
    rows = {row.tobytes(): index for index, row in enumerate(images.reshape(len(images), -1).astype(np.float64))}
    used = set()
    for image, label in zip(x.reshape(len(x), -1), y):
        index = rows.get(image.tobytes())
        if index is None:
            return "an image of the subset is not one of the inputs"
        if index in used:
            return "an input appears twice in the subset"
        if labels[index] != label:
            return "a label of the subset is not its image's label"
        used.add(index)
    per_class = int(options["per_class"])
    counts = {int(c): int(np.sum(y == c)) for c in np.unique(labels)}
    wrong = {c: n for c, n in counts.items() if n != per_class}
    return None if not wrong else f"class counts {wrong}, expected {per_class} each"
