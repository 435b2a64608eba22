"""Decide every test's verdict in the grader's own, clean process.

Nothing the student's code returned is trusted as an object: the hidden tests saved plain
numeric arrays, which are loaded here with ``allow_pickle=False`` and compared with the values
the instructor's solution recorded on the same inputs. A test cell passes only if every value
its reference recorded is present and matches, and its source checks (if any) pass.
"""

from __future__ import annotations

import ast
import builtins
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import SourceCheck

DEFAULT_RTOL, DEFAULT_ATOL = 1e-6, 1e-8


@dataclass(frozen=True)
class Reference:
    """What the solution recorded: the record keys of each test cell, their values and options."""

    keys_by_cell: dict[str, tuple[str, ...]]
    values: dict[str, np.ndarray]
    options: dict[str, dict]


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str  # for the instructor: which check failed (never shown to students)


def load_array(path: Path, max_bytes: int) -> np.ndarray | str:
    """A recorded value, or a string saying why it cannot be used."""
    try:
        if path.stat().st_size > max_bytes:
            return "too large"
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        return f"unreadable ({type(error).__name__})"
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        return "not a numeric array"
    return array


def load_records(records: Path, max_total_bytes: int) -> dict[str, np.ndarray | str]:
    """Every value a run recorded, by key file stem, reading at most ``max_total_bytes``."""
    values: dict[str, np.ndarray | str] = {}
    budget = max_total_bytes
    if not records.is_dir():
        return values
    for path in sorted(records.glob("*.npy")):
        if path.is_symlink() or not path.is_file():
            values[path.stem] = "not a regular file"
            continue
        size = path.stat().st_size
        values[path.stem] = load_array(path, budget) if size <= budget else "over the records limit"
        budget -= size
    return values


def load_reference(out: Path, test_ids: list[str], max_total_bytes: int) -> Reference:
    """Read a reference run; every test cell must have run cleanly and recorded something."""
    manifest = json.loads((out / "manifest.json").read_text())
    records = load_records(out / "records", max_total_bytes)
    keys_by_cell: dict[str, tuple[str, ...]] = {}
    for entry in manifest["cells"]:
        if entry["grade_id"] in test_ids:
            if entry["status"] != "ok":
                raise RuntimeError(f"the solution fails its own test {entry['grade_id']}: {entry['error']}")
            keys_by_cell[entry["grade_id"]] = tuple(entry["records"])
    problems = [cell for cell in test_ids if not keys_by_cell.get(cell)]
    if problems:
        raise RuntimeError(f"test cells whose hidden tests record nothing: {problems}")
    bad = {key: value for key, value in records.items() if isinstance(value, str)}
    if bad:
        raise RuntimeError(f"the solution's records cannot be read: {bad}")
    options = {}
    for key in records:
        option_file = out / "records" / f"{key}.json"
        options[key] = json.loads(option_file.read_text()) if option_file.is_file() else {}
    return Reference(keys_by_cell, dict(records), options)


def check_value(key: str, reference: Reference, submitted: np.ndarray | str | None) -> str | None:
    """None when the submitted value passes the reference's check, else why not."""
    if submitted is None:
        return f"{key}: not recorded"
    if isinstance(submitted, str):
        return f"{key}: {submitted}"
    expected = reference.values[key]
    options = reference.options.get(key, {})
    if options.get("check") == "accuracy":
        truth_key = str(options["truth"]).replace("/", "__")
        truth = reference.values[truth_key]
        if submitted.shape != truth.shape:
            return f"{key}: shape {submitted.shape}, expected {truth.shape}"
        accuracy = float(np.mean(submitted == truth))
        at_least = float(options["at_least"])
        return None if accuracy >= at_least else f"{key}: accuracy {accuracy:.4f} < {at_least}"
    if submitted.shape != expected.shape:
        return f"{key}: shape {submitted.shape}, expected {expected.shape}"
    rtol = float(options.get("rtol", DEFAULT_RTOL))
    atol = float(options.get("atol", DEFAULT_ATOL))
    with np.errstate(all="ignore"):
        close = np.allclose(submitted.astype(np.float64), expected.astype(np.float64),
                            rtol=rtol, atol=atol, equal_nan=False)
    return None if close else f"{key}: values differ from the reference"


# --- checks on the submitted source -------------------------------------------------------

FORBIDDEN_NODES = {
    "for": (ast.For, ast.AsyncFor),
    "while": (ast.While,),
    "comprehension": (ast.comprehension,),
}


def _parse(code: str) -> ast.Module | None:
    # IPython magics and shell escapes are not Python; blank them so the rest still parses.
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def check_source(check: SourceCheck, student_code: list[str]) -> str | None:
    """None when the function named by ``check`` (last definition wins, as when the notebook
    runs), and every function of the submission it calls, avoid the forbidden syntax."""
    definitions: dict[str, ast.FunctionDef] = {}
    for code in student_code:
        module = _parse(code)
        if module is None:
            continue
        for node in ast.walk(module):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                definitions[node.name] = node
    if check.function not in definitions:
        return f"{check.function} is not defined in the submission"
    forbidden = tuple(cls for name in check.forbid for cls in FORBIDDEN_NODES[name])
    seen, pending = set(), [check.function]
    while pending:
        name = pending.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        for node in ast.walk(definitions[name]):
            if isinstance(node, forbidden):
                return f"{name} uses a {type(node).__name__.lower()} (line {getattr(node, 'lineno', '?')})"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                pending.append(node.func.id)
    return None


# --- messages of visible tests ---------------------------------------------------------------


def visible_messages(visible_source: str) -> tuple[set[str], list[str]]:
    """Assertion messages a visible test can produce: exact strings, and constant prefixes of
    f-strings. Feedback repeats a failure's message only if it is one of these, so nothing the
    student's code raises (hidden test source, say) can travel into the feedback."""
    exact: set[str] = set()
    prefixes: list[str] = []
    module = _parse(visible_source)
    if module is None:
        return exact, prefixes

    def collect(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            exact.add(node.value)
        elif isinstance(node, ast.JoinedStr):
            prefix = ""
            for part in node.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    prefix += part.value
                else:
                    break
            if len(prefix) >= 8:
                prefixes.append(prefix)

    for node in ast.walk(module):
        if isinstance(node, ast.Assert):
            collect(node.msg)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "AssertionError" and node.args:
            collect(node.args[0])
    return exact, prefixes


def feedback_message(error: str | None, visible_source: str) -> str:
    """What feedback may say about a test cell's error, from the run's (untrusted) manifest."""
    if not error:
        return ""
    name, _, message = error.partition(": ")
    if name == "NotImplementedError":
        return "not implemented yet (the answer cell still raises NotImplementedError)"
    if name == "KeyboardInterrupt":
        return "stopped: the cell ran longer than the time limit"
    if name == "AssertionError":
        exact, prefixes = visible_messages(visible_source)
        if message in exact or any(message.startswith(prefix) for prefix in prefixes):
            return message[:500]
        return "a visible test failed"
    if isinstance(getattr(builtins, name, None), type) and issubclass(getattr(builtins, name), BaseException):
        return f"the test raised {name}"
    return "the test raised an error"
