"""Homework 1's bank: correct, partly right, each usual mistake, each kind of bad input, and
attempts to cheat from every category of the threat model (DESIGN.md), with the exact score each
must get. Every cheat scores exactly what the same submission scores without the cheat."""

from __future__ import annotations

import json
from pathlib import Path

from autograder.config import Limits
from banks.common import (Case, Homework, Probe, appended, blank_answers, edited, grade_id, notebook_case,
                          partly_done, replace, solution_answers, student_notebook, with_cells)

HOMEWORK = Homework("a1_hinge_loss", "hinge_loss.ipynb")
NOTEBOOK = HOMEWORK.notebook
# Limits for the whole bank (one grading run has one set of limits: the results of a run are tied
# to its limits through the reference id, so per-case limits would need per-submission limits in
# grade_class). The cell limit is what the two time-limit cases (cell_never_ends,
# cell_ignores_interrupts) hit; at 30 s it costs them 10 s more each than the old 20 s, and gives
# every other cell a wide margin: under a load average of 20 on 2 cores the set-up cell alone took
# over 20 s, and a correct submission lost the tests after it (80 instead of 100). Quiet, no cell
# of this notebook takes 5 s. The wall limit is generous for the same reason (90 s was eaten by a
# slow but correct run); no case of this bank is about the wall limit.
LIMITS = Limits(wall_seconds=300, cell_seconds=30, cpu_seconds=120, memory_mb=3072, output_kb=256, records_mb=16)


def correct():
    return solution_answers(HOMEWORK)


def blank():
    return blank_answers(HOMEWORK)


def _fix(cell: str, old: str, new: str):
    return edited(HOMEWORK, (cell, old, new))


def partial_hinge_and_naive():
    return partly_done(HOMEWORK, "multiclass_hinge_loss", "svm_loss_naive")


LOOPING_VECTORIZED = '''def svm_loss_vectorized(W, X, y, reg):
    """Loops, through a helper of the same file."""
    return svm_loss_naive(W, X, y, reg)
'''
LOOP_FREE_VECTORIZED = '''def svm_loss_vectorized(W, X, y, reg):
    return float(np.sum(W)), np.zeros_like(W)
'''


def vectorized(code: str):
    return lambda: with_cells(correct(), svm_loss_vectorized=code)


def training_does_not_learn():
    return replace(correct(), "train_linear_classifier", "        W -= learning_rate * dW\n", "        pass\n")


def trainer_without_seed():
    return replace(correct(), "train_linear_classifier", "rng = np.random.default_rng(seed)",
                   "rng = np.random.default_rng()")


# --- attacks on the held-out labels (issue 10): a trainer that learns nothing ------------------

PREDICT_FROM_FRAMES = '''
def predict(W, X):
    """Looks for the grader's labels: any integer array of len(X) in a caller's frame."""
    import inspect
    for frame_info in inspect.stack()[1:]:
        for namespace in (frame_info.frame.f_locals, frame_info.frame.f_globals):
            for value in list(namespace.values()):
                if (isinstance(value, np.ndarray) and value.shape == (len(X),)
                        and np.issubdtype(value.dtype, np.integer)):
                    return value.copy()
    return np.argmax(X @ W.T, axis=1)
'''
PREDICT_FROM_PUBLIC_DIGITS = '''
def predict(W, X):
    """Looks each row up in scikit-learn's public digits and returns the true label."""
    from sklearn.datasets import load_digits as _load
    digits = _load()
    table = {tuple(np.round(row / 16.0, 6)): label for row, label in zip(digits.data, digits.target)}
    guess = np.argmax(X @ W.T, axis=1)
    if X.shape[1] != 65:
        return guess
    found = [table.get(tuple(np.round(row[:64], 6))) for row in X]
    return np.array([g if f is None else f for f, g in zip(found, guess)])
'''


def predict_cheat(code: str):
    return lambda: with_cells(training_does_not_learn(), predict=code)


# --- attacks on the trust boundary (issue 11) -----------------------------------------------------

REPLAY_HIDDEN_TESTS = '''
# Replay every hidden test this kernel has seen.
import re as _re
for _source in list(In):
    for _hidden in _re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", _source, _re.S):
        exec(_hidden)
'''
STRIP_ASSERTS = '''
# From now on, every assert of a cell is dropped before it runs (the visible tests never fail).
import ast as _ast
class _NoAsserts(_ast.NodeTransformer):
    def visit_Assert(self, node):
        return _ast.Pass()
get_ipython().ast_transformers.append(_NoAsserts())
'''
FORGED_MANIFEST_THEN_DIE = '''
# Write a manifest whose "stopped" field carries the hidden tests seen so far, then die.
import json as _json, os as _os, re as _re, signal as _signal
_hidden = "".join(_re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", "".join(In), _re.S))
for _folder in ("/scratch/out", "/scratch", "/kernel"):
    try:
        _os.makedirs(_folder, exist_ok=True)
        with open(_folder + "/manifest.json", "w") as _file:
            _json.dump({"cells": [], "stopped": _hidden, "seconds": 1.0, "output_truncated": False}, _file)
    except OSError:
        pass
print(_hidden)
_os.kill(_os.getpid(), _signal.SIGKILL)
'''
LEAK_THROUGH_ASSERTION = '''
def multiclass_hinge_loss(scores, y):
    """Raises an AssertionError that starts like a visible test's message, then carries the
    hidden tests of the running cell."""
    source = get_ipython().user_ns["In"][-1]
    raise AssertionError("expected the slide's " + source + ", got " + source)
'''
FORGED_RECORDS = '''
# Records sent by hand, in and out of the test cells: a huge declared shape, a wrong type, a key
# of a later test, from a background thread too.
import base64 as _b64, threading as _threading, time as _time
from IPython.display import publish_display_data as _publish
_MIME = "application/vnd.cvcourse.record+json"
def _forge(key, shape, dtype="float64", data=b"\\0" * 8):
    _publish({_MIME: {"key": key, "kind": "array", "items": [
        {"name": None, "dtype": dtype, "shape": shape, "data": _b64.b64encode(data).decode()}]}})
def _flood():
    for _ in range(200):
        for key in ("hinge/random_0", "svm_naive/random_0/loss", "train_svm/W"):
            _forge(key, [2**40]); _forge(key, [1], "object"); _forge(key, [])
        _time.sleep(0.05)
_threading.Thread(target=_flood, daemon=True).start()
def multiclass_hinge_loss(scores, y):
    _forge("hinge/random_0", [2**40]); _forge("hinge/random_0", [])
    return np.zeros(len(y))
'''
SYMLINKED_SOCKETS = '''
# Replace the kernel's sockets and the scratch folders with links towards other runs.
import os as _os
for _name in list(_os.listdir("/kernel")):
    try:
        _os.replace("/kernel/" + _name, "/kernel/" + _name + ".old")
        _os.symlink("../cvk-other/" + _name, "/kernel/" + _name)
    except OSError:
        pass
for _target in ("../../bob_smith/out/records", "../bob_smith", "/scratch/../correct"):
    try:
        _os.symlink(_target, "/scratch/work/link_" + str(abs(hash(_target))))
    except OSError:
        pass
'''

ZERO_FUNCTIONS = '''
def multiclass_hinge_loss(scores, y):
    return np.zeros(len(y))

def svm_loss_naive(W, X, y, reg):
    return 0.0, np.zeros_like(W)

svm_loss_vectorized = softmax_loss_vectorized = svm_loss_naive

def train_linear_classifier(X, y, loss_fn, learning_rate, reg, num_iters, batch_size, seed):
    return np.zeros((int(np.max(y)) + 1, X.shape[1]))

def predict(W, X):
    return np.zeros(len(X), dtype=int)
'''

CHEATS = {
    "cheat_monkeypatch_numpy": ZERO_FUNCTIONS + '''
np.allclose = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.shape(a), dtype=bool)
np.array_equal = lambda *args, **kwargs: True
''',
    "cheat_patch_builtins": ZERO_FUNCTIONS + '''
import builtins
builtins.abs = lambda value: 0.0
builtins.isinstance = lambda *args: True
builtins.len = lambda value: 0
''',
    "cheat_equal_to_anything": '''
class Anything(float):
    def __new__(cls): return super().__new__(cls, 0.0)
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __le__(self, other): return True
    def __gt__(self, other): return True
    def __ge__(self, other): return True
    def __abs__(self): return self
    def __sub__(self, other): return self
    __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = __sub__
    def __getitem__(self, key): return self
    @property
    def shape(self): return Anything()
    def __array__(self, *args, **kwargs): return np.array([self], dtype=object)
    def __iter__(self): return iter([self])

def multiclass_hinge_loss(scores, y): return Anything()
def svm_loss_naive(W, X, y, reg): return Anything(), Anything()
svm_loss_vectorized = softmax_loss_vectorized = svm_loss_naive
def train_linear_classifier(*args, **kwargs): return Anything()
def predict(W, X): return Anything()
''',
    "cheat_input_transformer": ZERO_FUNCTIONS + '''
def _drop_tests(lines):
    text = "".join(lines)
    if "# Test:" in text or "grader_record" in text:
        return ["pass\\n"]
    return lines
get_ipython().input_transformers_cleanup.append(_drop_tests)
''',
    "cheat_hide_tracebacks": ZERO_FUNCTIONS + '''
ip = get_ipython()
ip.showtraceback = lambda *args, **kwargs: None
ip.showsyntaxerror = lambda *args, **kwargs: None
ip.set_custom_exc((BaseException,), lambda *args, **kwargs: None)
''',
    "cheat_kill_kernel_at_tests": ZERO_FUNCTIONS + '''
import os, signal
def _die(info):
    if "# Test:" in info.raw_cell:
        os.kill(os.getpid(), signal.SIGKILL)
get_ipython().events.register("pre_run_cell", _die)
''',
    "cheat_replace_recorder": ZERO_FUNCTIONS + '''
grader_record = lambda *args, **kwargs: None
import builtins
builtins.grader_record = grader_record
''',
    "cheat_forge_records": ZERO_FUNCTIONS + FORGED_RECORDS,
    "cheat_read_solutions": '''
import glob, json, re
_found = []
for pattern in ("/work/**/solutions/**/*.ipynb", "/root/**/*.ipynb", "/**/hinge_loss.ipynb",
                "/**/.reference/**/*.npz", "/**/gradebook.db", "/tmp/**/solutions/**/*.ipynb"):
    try:
        _found += glob.glob(pattern, recursive=True)
    except OSError:
        pass
for path in _found:
    try:
        notebook = json.load(open(path))
        for cell in notebook["cells"]:
            exec("".join(cell["source"]).replace("### BEGIN SOLUTION", ""))
    except Exception:
        pass
try:
    multiclass_hinge_loss
except NameError:
''' + "\n".join("    " + line for line in ZERO_FUNCTIONS.strip().splitlines()),
    "cheat_symlinked_sockets_and_scratch": ZERO_FUNCTIONS + SYMLINKED_SOCKETS,
}


def _cheat(code: str):
    """The cheat in the first answer cell, the other answer cells emptied (so the cheat's own
    definitions stay in force for every test): honest work worth 0."""
    def answers():
        return with_cells({cell: "" for cell in HOMEWORK.answer_ids}, multiclass_hinge_loss=code + "\n")
    return answers


def escape_cheat(probe: Probe) -> str:
    """Writes to the host paths the test watches, and connects to its loopback server."""
    return ZERO_FUNCTIONS + f'''
import os, socket
for path in {probe.paths!r}:
    try:
        open(path, "w").write("escaped")
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", {probe.port}), timeout=3).sendall(b"escaped")
except OSError:
    pass
'''


# --- notebook-level mutations ----------------------------------------------------------------------

def _strip_ids(notebook):
    for cell in notebook["cells"]:
        cell["metadata"].pop("nbgrader", None)
    return notebook


def _duplicate_answer(notebook):
    index = next(i for i, c in enumerate(notebook["cells"]) if grade_id(c) == "svm_loss_naive")
    notebook["cells"].insert(index + 1, json.loads(json.dumps(notebook["cells"][index])))
    return notebook


def _delete_tests(notebook):
    notebook["cells"] = [c for c in notebook["cells"] if not (grade_id(c) or "").startswith("test_")]
    return notebook


def _reorder(notebook):
    tests = [c for c in notebook["cells"] if (grade_id(c) or "").startswith("test_")]
    notebook["cells"] = tests + [c for c in notebook["cells"] if c not in tests]
    return notebook


def _retype_naive(notebook):
    for cell in notebook["cells"]:
        if grade_id(cell) == "svm_loss_naive":
            cell["cell_type"] = "markdown"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    return notebook


def _relabel_tests(notebook):
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            meta["points"] = 1000
            cell["source"] = "pass\n"
    return notebook


def _added_cell_before(code: str, before: str):
    """A code cell the student added just before the answer cell ``before``."""
    def mutate(notebook):
        index = next(i for i, c in enumerate(notebook["cells"]) if grade_id(c) == before)
        notebook["cells"].insert(index, {"cell_type": "code", "metadata": {}, "outputs": [],
                                         "execution_count": None, "source": code})
        return notebook
    return mutate


def _other_assignment(folder: Path) -> None:
    notebook = {"cells": [{"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "conv_forward", "solution": True}},
                           "source": "def conv_forward(x, w):\n    return x\n", "outputs": [], "execution_count": None}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "conv_layer.ipynb").write_text(json.dumps(notebook))


def _solution_file(folder: Path, name: str) -> None:
    (folder / name).write_text(json.dumps(student_notebook(HOMEWORK, correct())))


def _raw_notebook(text: str):
    return lambda folder: (folder / NOTEBOOK).write_text(text)


def _deeply_nested(folder: Path) -> None:
    notebook = student_notebook(HOMEWORK, correct())
    (folder / NOTEBOOK).write_text(json.dumps(notebook)[:-1] + ', "deep": ' + "[" * 1500 + "]" * 1500 + "}")


def _huge_integer(folder: Path) -> None:
    notebook = student_notebook(HOMEWORK, correct())
    (folder / NOTEBOOK).write_text(json.dumps(notebook)[:-1] + ', "n": ' + "7" * 5000 + "}")


def _code_appended(cell: str, code: str):
    return lambda: appended(correct(), cell, code)


def cases(probe: Probe | None = None) -> list[Case]:
    probe = probe or Probe()
    case = lambda *args, **kwargs: notebook_case(HOMEWORK, *args, **kwargs)  # noqa: E731
    bank = [
        case("correct", 100, correct),
        case("blank", 0, blank),
        case("partial_hinge_and_naive", 30, partial_hinge_and_naive),
        case("mistake_hinge_counts_correct_class", 90, _fix("multiclass_hinge_loss", "    margins[rows, y] = 0.0\n", "")),
        case("mistake_naive_missing_margin", 70, _fix("svm_loss_naive", "margin = scores[j] - correct + 1.0",
                                                      "margin = scores[j] - correct")),
        case("mistake_vectorized_sum_not_mean", 70, _fix("svm_loss_vectorized", "loss = np.sum(margins[counted]) / num_examples",
                                                         "loss = np.sum(margins[counted])")),
        case("mistake_vectorized_reg_gradient", 70, _fix("svm_loss_vectorized", "X / num_examples + 2 * reg * W",
                                                         "X / num_examples + reg * W")),
        # N times too large a gradient still trains (the step is just larger): only the loss tests fail.
        case("mistake_vectorized_missing_1_over_n", 70, _fix("svm_loss_vectorized", "dW = coefficients.T @ X / num_examples",
                                                             "dW = coefficients.T @ X")),
        case("mistake_softmax_unstable", 80, _fix("softmax_loss_vectorized",
                                                  "shifted = scores - scores.max(axis=1, keepdims=True)", "shifted = scores")),
        case("vectorized_with_a_loop", 80, _fix("svm_loss_vectorized", "    margins[rows, y] = 0.0\n",
                                                "    for i in range(num_examples):\n        margins[i, y[i]] = 0.0\n")),
        case("vectorized_calls_the_looping_naive", 80, vectorized(LOOPING_VECTORIZED)),
        case("training_does_not_learn", 80, training_does_not_learn),
        case("trainer_ignores_its_seed", 80, trainer_without_seed),
        # Issue 10: the held-out labels are nowhere to be found, and predictions are the grader's.
        case("predict_reads_labels_from_frames", 80, predict_cheat(PREDICT_FROM_FRAMES)),
        case("predict_looks_up_public_digits", 80, predict_cheat(PREDICT_FROM_PUBLIC_DIGITS)),
        # Issue 11: the loop rule judges exactly the code that produced the records.
        case("loop_rule_globals_lookup", 80, vectorized(
            "def svm_loss_vectorized(W, X, y, reg):\n    return globals()['svm_loss_naive'](W, X, y, reg)\n")),
        case("loop_rule_default_argument", 80, vectorized(
            "def svm_loss_vectorized(W, X, y, reg, _impl=svm_loss_naive):\n    return _impl(W, X, y, reg)\n")),
        case("loop_rule_rebound_after_def", 80, vectorized(LOOP_FREE_VECTORIZED + "\nsvm_loss_vectorized = svm_loss_naive\n")),
        case("loop_rule_def_under_if_false", 80, vectorized(
            "if False:\n" + "".join("    " + line + "\n" for line in LOOP_FREE_VECTORIZED.splitlines())
            + "\n" + LOOPING_VECTORIZED)),
        case("loop_rule_def_in_an_added_cell_before", 80, vectorized(LOOPING_VECTORIZED),
             mutate=_added_cell_before(LOOP_FREE_VECTORIZED, "svm_loss_vectorized")),
        case("loop_rule_unparsable_line", 80, vectorized("_ = %pwd\n" + LOOPING_VECTORIZED)),
        # The stub fails the vectorized and edge-case tests; the rebinding then trains with the
        # (correct) naive loss: the replay itself adds nothing to what the rebinding alone scores.
        case("rebound_to_naive_before_training", 70, lambda: appended(
            with_cells(correct(), svm_loss_vectorized=LOOP_FREE_VECTORIZED), "predict",
            "svm_loss_vectorized = svm_loss_naive\n")),
        case("replay_hidden_tests_with_a_stub", 70, lambda: appended(
            with_cells(correct(), svm_loss_vectorized=LOOP_FREE_VECTORIZED), "predict",
            "svm_loss_vectorized = svm_loss_naive\n" + REPLAY_HIDDEN_TESTS)),
        case("replay_with_a_trainer_ignoring_its_seed", 80, lambda: appended(trainer_without_seed(), "predict",
                                                                              REPLAY_HIDDEN_TESTS)),
        case("asserts_stripped_trainer_ignoring_its_seed", 80, lambda: appended(trainer_without_seed(), "multiclass_hinge_loss",
                                                                                 STRIP_ASSERTS)),
        case("forged_manifest_then_killed", 0, lambda: appended(blank(), "predict", FORGED_MANIFEST_THEN_DIE),
             "the notebook stopped early: the kernel died"),
        case("assertion_message_carries_hidden_tests", 0, lambda: with_cells(blank(), multiclass_hinge_loss=LEAK_THROUGH_ASSERTION)),
        case("cheat_escape_and_network", 0, _cheat(escape_cheat(probe))),
        # Bad input: a row for each, and the class goes on.
        Case("invalid_json", 0, _raw_notebook('{"cells": [ '), "ungradable: invalid notebook"),
        Case("deeply_nested_metadata", 0, _deeply_nested, "ungradable: invalid notebook"),
        Case("huge_integer_in_the_notebook", 0, _huge_integer, "ungradable: invalid notebook"),
        Case("other_assignment", 0, _other_assignment, "ungradable: not a notebook of this assignment"),
        Case("no_notebook", 0, lambda f: (f / "answers.py").write_text("print('hi')\n"), "ungradable: no notebook"),
        Case("two_notebooks_none_named", 0,
             lambda f: (_solution_file(f, "a.ipynb"), _solution_file(f, "b.ipynb")), "ungradable"),
        Case("two_notebooks_one_named", 100,
             lambda f: (_solution_file(f, NOTEBOOK), _solution_file(f, "scratch.ipynb")), "other notebook(s) ignored"),
        Case("renamed_notebook", 100, lambda f: _solution_file(f, "hinge_loss (1).ipynb"), "hinge_loss (1).ipynb"),
        Case("bob smith", 100, lambda f: _solution_file(f, NOTEBOOK)),
        Case("bob_smith", 0, lambda f: (f / NOTEBOOK).write_text(json.dumps(student_notebook(HOMEWORK, blank())))),
        case("missing_cell_ids", 100, correct, "no cell carries this assignment's cell ids", mutate=_strip_ids),
        case("duplicated_cell_id", 100, correct, "appears more than once", mutate=_duplicate_answer),
        case("test_cells_deleted", 100, correct, "deleted or re-labelled", mutate=_delete_tests),
        case("cells_reordered", 100, correct, mutate=_reorder),
        case("answer_retyped_to_markdown", 70, correct, "not a code cell", mutate=_retype_naive),
        case("tests_relabelled_and_emptied", 0, blank, mutate=_relabel_tests),
        case("kernel_dies", 80, _code_appended("predict", "import os\nos._exit(1)\n"), "kernel died"),
        case("cell_never_ends", 100, _code_appended("predict", "import time\ntime.sleep(10**6)\n"), "ran longer than"),
        case("cell_ignores_interrupts", 80, _code_appended(
            "predict", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"),
            "could not be interrupted"),
        case("eats_memory", 100, _code_appended("predict", "hog = [bytearray(2**30) for _ in range(64)]\n")),
        case("warnings_on_stderr", 100, _code_appended("multiclass_hinge_loss", (
            "import sys, warnings, logging\nwarnings.warn('deprecated thing', DeprecationWarning)\n"
            "warnings.warn('a user warning')\nprint('W0000 absl: something', file=sys.stderr)\n"
            "logging.getLogger('tensorflow').warning('TF says hi')\n"))),
        case("output_flood", 100, _code_appended("predict", "for _ in range(20000):\n    print('x' * 1000)\n"),
             "output beyond"),
    ]
    bank += [case(name, 0, _cheat(code)) for name, code in CHEATS.items()]
    return bank
