"""Decide every test's verdict in the grader's own, clean process.

Nothing the student's code returned is trusted as an object: the hidden tests sent plain
numeric values (:mod:`autograder.records`), which are compared here with the values the
instructor's solution recorded on the same inputs, or judged by a grader-side evaluator
(:mod:`autograder.evaluators`) named by the solution's record. How each key is judged (tolerance,
evaluator, options) comes from the solution's run only.

Feedback is built from fixed texts: the grader's own sentences, and a visible test's assertion
message only as written in the test's source (see :func:`feedback_message`).
"""

from __future__ import annotations

import ast
import builtins
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .evaluators import Context, evaluate
from .records import Record, value_arrays

DEFAULT_RTOL, DEFAULT_ATOL = 1e-6, 1e-8


@dataclass(frozen=True)
class Reference:
    """What the solution recorded: the keys of each test cell, their values and options."""

    keys_by_test: dict[str, tuple[str, ...]]
    values: dict[str, object]
    options: dict[str, dict]

    def cell_values(self, test: str) -> dict[str, object]:
        return {key: self.values[key] for key in self.keys_by_test[test]}

    def save(self, folder: Path) -> None:
        """Write the reference as ``reference.json`` (structure, options) and ``reference.npz``."""
        arrays, index = {}, {}
        for key, value in self.values.items():
            kind = "array" if isinstance(value, np.ndarray) else "list" if isinstance(value, list) else "dict"
            pairs = value_arrays(value)
            names = [str(len(arrays) + position) for position in range(len(pairs))]
            arrays.update(zip(names, (array for _, array in pairs)))
            index[key] = {"kind": kind, "labels": [label for label, _ in pairs], "arrays": names}
        np.savez(folder / "reference.npz", **arrays)
        (folder / "reference.json").write_text(json.dumps(
            {"keys_by_test": self.keys_by_test, "options": self.options, "index": index}, indent=1))

    @classmethod
    def load(cls, folder: Path) -> Reference:
        meta = json.loads((folder / "reference.json").read_text())
        with np.load(folder / "reference.npz", allow_pickle=False) as stored:
            values: dict[str, object] = {}
            for key, entry in meta["index"].items():
                arrays = [stored[name] for name in entry["arrays"]]
                if entry["kind"] == "array":
                    values[key] = arrays[0]
                elif entry["kind"] == "list":
                    values[key] = arrays
                else:
                    values[key] = {label[1:-1]: array for label, array in zip(entry["labels"], arrays)}
        return cls({test: tuple(keys) for test, keys in meta["keys_by_test"].items()}, values, meta["options"])


def _structure_problem(key: str, submitted: object, expected: object) -> str | None:
    if type(submitted) is not type(expected):
        return f"{key}: a {type(submitted).__name__}, expected a {type(expected).__name__}"
    if isinstance(expected, dict) and set(submitted) != set(expected):
        return f"{key}: keys {sorted(submitted)[:10]}, expected {sorted(expected)}"
    if isinstance(expected, list) and len(submitted) != len(expected):
        return f"{key}: {len(submitted)} arrays, expected {len(expected)}"
    return None


def check_record(key: str, test: str, reference: Reference, records: dict[str, Record]) -> str | None:
    """None when the record of ``key`` in this run passes its check, else why not."""
    record = records.get(key)
    if record is None:
        return f"{key}: not recorded"
    if record.value is None:
        return f"{key}: recorded more than once"
    options = reference.options.get(key, {})
    if "evaluate" in options:
        context = Context(submitted={k: r.value for k, r in records.items() if r.value is not None},
                          reference=reference.cell_values(test))
        problem = evaluate(str(options["evaluate"]), record.value, options, context)
        return None if problem is None else f"{key}: {problem}"
    expected = reference.values[key]
    problem = _structure_problem(key, record.value, expected)
    if problem:
        return problem
    rtol = float(options.get("rtol", DEFAULT_RTOL))
    atol = float(options.get("atol", DEFAULT_ATOL))
    for (label, got), (_, want) in zip(value_arrays(record.value), value_arrays(expected)):
        if got.shape != want.shape:
            return f"{key}{label}: shape {got.shape}, expected {want.shape}"
        with np.errstate(all="ignore"):
            close = np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol,
                                equal_nan=False)
        if not close:
            return f"{key}{label}: values differ from the reference"
    return None


# --- messages of visible tests ---------------------------------------------------------------

FIELD = "…"


def _parse(code: str) -> ast.Module | None:
    from .analysis import parse_cell

    return parse_cell(code)


def visible_messages(visible_source: str) -> tuple[set[str], list[tuple[re.Pattern, str]]]:
    """The assertion messages a visible test can produce: exact strings, and f-string templates
    as (pattern, text with each field shown as …)."""
    exact: set[str] = set()
    templates: list[tuple[re.Pattern, str]] = []
    module = _parse(visible_source)
    if module is None:
        return exact, templates

    def collect(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            exact.add(node.value)
        elif isinstance(node, ast.JoinedStr):
            pattern, text = "", ""
            for part in node.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    pattern += re.escape(part.value)
                    text += part.value
                else:
                    pattern += ".*?"
                    text += FIELD
            templates.append((re.compile(pattern, re.S), text))

    for node in ast.walk(module):
        if isinstance(node, ast.Assert):
            collect(node.msg)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "AssertionError" and node.args:
            collect(node.args[0])
    return exact, templates


def feedback_message(error_name: str | None, error_value: str | None, visible_source: str) -> str:
    """What feedback may say about a test cell's error. The kernel's text only selects one of
    the test's own messages; it never reaches the feedback itself."""
    if not error_name:
        return ""
    if error_name == "NotImplementedError":
        return "not implemented yet (the answer cell still raises NotImplementedError)"
    if error_name == "KeyboardInterrupt":
        return "stopped: the cell ran longer than the time limit"
    if error_name == "AssertionError":
        exact, templates = visible_messages(visible_source)
        if error_value in exact:
            return error_value[:500]
        for pattern, text in templates:
            if error_value is not None and pattern.fullmatch(error_value):
                return text[:500]
        return "a visible test failed"
    exception = getattr(builtins, error_name, None)
    if isinstance(exception, type) and issubclass(exception, BaseException):
        return f"the test raised {error_name}"
    return "the test raised an error"
