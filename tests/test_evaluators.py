"""Grader-side evaluators and the record format: a value is judged in the grader's process from
data the student's kernel never held, and a bad value (wrong shape, NaN, huge, forged) fails its
test with a reason, never the run."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from autograder.evaluators import EVALUATORS, Context, evaluate
from autograder.records import BadRecord, decode_record
from cvcourse.splits import digits_part

NO_CONTEXT = Context(submitted={}, reference={})


def _least_squares_classifier(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A decent linear classifier of the digits (one-hot least squares), W of shape (10, 65)."""
    targets = np.eye(10)[y]
    return np.linalg.lstsq(X, targets, rcond=None)[0].T


def test_every_evaluator_has_a_docstring_saying_what_it_loads_and_when_it_passes():
    for name, function in EVALUATORS.items():
        doc = function.__doc__ or ""
        assert "Loads" in doc or "Builds" in doc, name
        assert "Passes when" in doc, name


def test_linear_classifier_accuracy_measures_on_the_held_out_part_only():
    X_fit, y_fit = digits_part("fit", seed=2024)
    W = _least_squares_classifier(X_fit, y_fit)
    options = {"split_seed": 2024, "at_least": 0.90}
    assert evaluate("linear_classifier_accuracy", W, options, NO_CONTEXT) is None
    # The same weights, asked for more than they reach: the reason gives the accuracy.
    reason = evaluate("linear_classifier_accuracy", W, dict(options, at_least=0.999), NO_CONTEXT)
    assert reason.startswith("held-out digits: accuracy 0.9") and "< 0.999" in reason
    # The fit and held-out parts are disjoint and together the whole set.
    X_held, _ = digits_part("heldout", seed=2024)
    assert len(X_fit) + len(X_held) == 1797
    assert not set(map(bytes, X_fit.round(6))) & set(map(bytes, X_held.round(6))) or len(X_held) == 540


@pytest.mark.parametrize("value,reason", [
    (np.zeros((10, 64)), "shape (10, 64)"),
    (np.zeros(65), "shape (65,)"),
    (np.full((10, 65), np.nan), "NaN or infinite"),
    (np.full((10, 65), np.inf), "NaN or infinite"),
    ([np.zeros((10, 65))], "must be one array"),
    ({"W": np.zeros((10, 65))}, "must be one array"),
    (np.zeros((5000, 65)), "5000 classes"),
])
def test_wrong_shapes_nan_and_huge_values_fail_with_a_reason(value, reason):
    got = evaluate("linear_classifier_accuracy", value, {"split_seed": 2024, "at_least": 0.9}, NO_CONTEXT)
    assert got is not None and reason in got, got


def test_huge_but_finite_weights_fail_on_accuracy_not_by_crashing():
    W = np.full((10, 65), 1e300)
    got = evaluate("sigmoid_net_accuracy", {"W1": np.full((30, 65), 1e300), "W2": np.full((10, 30), -1e300)},
                   {"split_seed": 2024, "at_least": 0.5}, NO_CONTEXT)
    assert got is not None and "accuracy" in got
    assert "accuracy" in evaluate("linear_classifier_accuracy", W, {"split_seed": 2024, "at_least": 0.5}, NO_CONTEXT)


def test_two_layer_net_accuracy_checks_every_parameter():
    good = {"W1": np.zeros((784, 8)), "b1": np.zeros(8), "W2": np.zeros((8, 10)), "b2": np.zeros(10)}
    assert "accuracy 0.1000" in evaluate("two_layer_net_accuracy", good, {"at_least": 0.5}, NO_CONTEXT)
    assert "b2 has shape (9,)" in evaluate("two_layer_net_accuracy", dict(good, b2=np.zeros(9)), {"at_least": 0.5}, NO_CONTEXT)
    assert "expected a dict" in evaluate("two_layer_net_accuracy", dict(good, extra=np.zeros(1)), {"at_least": 0.5},
                                         NO_CONTEXT)


def test_records_of_the_same_cell_relate_same_seed_and_other_seed():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3) + 1
    context = Context(submitted={"a": a, "a_again": a.copy(), "b": b}, reference={})
    assert evaluate("equal_to_record", a.copy(), {"other": "a"}, context) is None
    assert "differs from a" in evaluate("equal_to_record", b, {"other": "a"}, context)
    assert evaluate("differs_from_record", b, {"other": "a"}, context) is None
    assert "another seed" in evaluate("differs_from_record", a.copy(), {"other": "a"}, context)
    assert "not recorded" in evaluate("equal_to_record", a, {"other": "missing"}, context)


def test_subset_of_inputs_checks_alignment_balance_and_distinctness():
    images = np.arange(24.0).reshape(6, 2, 2)
    labels = np.array([0, 1, 0, 1, 2, 2])
    context = Context(submitted={}, reference={"x": images, "y": labels})
    options = {"images": "x", "labels": "y", "per_class": 1}
    good = {"x": images[[1, 4, 0]], "y": labels[[1, 4, 0]]}
    assert evaluate("subset_of_inputs", good, options, context) is None
    assert "not its image's label" in evaluate("subset_of_inputs", {"x": good["x"], "y": np.array([0, 2, 1])}, options, context)
    assert "appears twice" in evaluate("subset_of_inputs", {"x": images[[0, 0]], "y": labels[[0, 0]]}, options, context)
    assert "class counts" in evaluate("subset_of_inputs", {"x": images[[0, 1]], "y": labels[[0, 1]]}, options, context)
    assert "not one of the inputs" in evaluate("subset_of_inputs", {"x": images[[0]] + 0.5, "y": labels[[0]]}, options, context)


def test_an_unknown_evaluator_or_an_exception_is_a_failure_not_a_crash():
    assert "unknown evaluator" in evaluate("no_such_evaluator", np.zeros(1), {}, NO_CONTEXT)
    assert "could not evaluate" in evaluate("in_range", np.array(0.5), {"low": "not a number"}, NO_CONTEXT)
    assert "has shape (1,)" in evaluate("in_range", np.zeros(1), {"low": 0}, NO_CONTEXT)


def _message(key="k", kind="array", dtype="float64", shape=(2,), data=None):
    raw = np.zeros(shape, dtype=dtype).tobytes() if data is None else data
    return {"key": key, "kind": kind, "items": [{"name": None, "dtype": dtype, "shape": list(shape),
                                                 "data": base64.b64encode(raw).decode()}]}


def test_a_record_round_trips_and_forged_ones_are_refused():
    assert decode_record(_message(shape=(2, 3)), 2**20).value.shape == (2, 3)
    for forged, rule in [
        (_message(shape=(2**40,), data=b"\0" * 8), "over the records limit"),
        (_message(shape=(3,), data=b"\0" * 8), "needs 24 bytes, 8 were sent"),
        (_message(dtype="object", data=b"\0" * 8), "not a plain number type"),
        (_message(dtype="U4", data=b"\0" * 16), "not a plain number type"),
        (_message(key="a key with spaces\n"), "bad key"),
        (_message(key="x" * 300), "bad key"),
        ({**_message(), "items": "nope"}, "no items"),
        ({**_message(), "kind": "pickle"}, "bad kind"),
        ([], "not an object"),
    ]:
        with pytest.raises(BadRecord, match=rule):
            decode_record(forged, 2**20)
    with pytest.raises(BadRecord, match="over the records limit"):
        decode_record(_message(shape=(1000,)), 100)
