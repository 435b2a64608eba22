"""A bank of Homework 1 submissions with the score each must get: correct, partly right, each
usual mistake, each kind of bad input, and attempts to cheat from every category of the
threat model (DESIGN.md). Used by tests/test_autograder.py and benchmarks/grading.py.

Every submission is built from the committed student version (assignments/), with answer
cells filled from the solution notebook or from the variants below, the way a student's
notebook would look.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from autograder.notebooks import cell_source, nbgrader_metadata

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "a1_hinge_loss"
NOTEBOOK = "hinge_loss.ipynb"
SOLUTION = REPO_ROOT / "solutions" / ASSIGNMENT / NOTEBOOK
RELEASE = REPO_ROOT / "assignments" / ASSIGNMENT / NOTEBOOK
# Written by the cheating submissions if the sandbox let them; tests check they never appear.
ESCAPE_MARKER = "/tmp/cvcourse-sandbox-escape-marker"

ANSWERS = ("multiclass_hinge_loss", "svm_loss_naive", "svm_loss_vectorized",
           "softmax_loss_vectorized", "slide_log_base", "train_linear_classifier", "predict")


def _grade_id(cell: dict) -> str | None:
    return nbgrader_metadata(cell).get("grade_id")


def solution_answers() -> dict[str, str]:
    """The solution's answer cells as a student would submit them (no nbgrader markers)."""
    notebook = json.loads(SOLUTION.read_text())
    answers = {}
    for cell in notebook["cells"]:
        if _grade_id(cell) in ANSWERS:
            text = cell_source(cell)
            answers[_grade_id(cell)] = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n", "", text, flags=re.M)
    return answers


def blank_answers() -> dict[str, str]:
    notebook = json.loads(RELEASE.read_text())
    return {_grade_id(c): cell_source(c) for c in notebook["cells"] if _grade_id(c) in ANSWERS}


def student_notebook(answers: dict[str, str]) -> dict:
    """The student version with the given answer cells filled in."""
    notebook = json.loads(RELEASE.read_text())
    for cell in notebook["cells"]:
        if _grade_id(cell) in answers:
            cell["source"] = answers[_grade_id(cell)]
    return notebook


def _replace(answers: dict[str, str], grade_id: str, old: str, new: str) -> dict[str, str]:
    changed = dict(answers)
    assert old in changed[grade_id], f"{old!r} not in the solution's {grade_id}: update the bank"
    changed[grade_id] = changed[grade_id].replace(old, new)
    return changed


def _with(answers: dict[str, str], **cells: str) -> dict[str, str]:
    return {**answers, **cells}


@dataclass
class Case:
    name: str
    expected_score: float
    build: Callable[[Path], None]  # writes the student's folder
    status: str = "graded"  # a substring the status must contain
    note: str = ""

    def write(self, root: Path) -> Path:
        folder = root / self.name
        folder.mkdir(parents=True)
        self.build(folder)
        return folder


def _notebook_case(name: str, expected: float, answers_fn, status: str = "graded",
                   mutate=None, filename: str = NOTEBOOK, note: str = "") -> Case:
    def build(folder: Path) -> None:
        notebook = student_notebook(answers_fn())
        if mutate is not None:
            notebook = mutate(notebook)
        (folder / filename).write_text(json.dumps(notebook, indent=1))

    return Case(name, expected, build, status, note)


def hidden_lines() -> list[str]:
    """Substantial lines of the hidden tests (what must never reach a student)."""
    notebook = json.loads(SOLUTION.read_text())
    lines = []
    for cell in notebook["cells"]:
        text = cell_source(cell)
        for hidden in re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", text, flags=re.S):
            lines += [line.strip() for line in hidden.splitlines() if len(line.strip()) > 25]
    assert lines, "the solution notebook has no hidden tests"
    return lines


def solution_lines() -> list[str]:
    """Substantial lines of the solution regions that appear nowhere else in the source notebook
    (a docstring may legitimately tell the student a line such as `W -= learning_rate * dW`)."""
    notebook = json.loads(SOLUTION.read_text())
    lines, public = [], ""
    for cell in notebook["cells"]:
        text = cell_source(cell)
        for body in re.findall(r"### BEGIN SOLUTION(.*?)### END SOLUTION", text, flags=re.S):
            lines += [line.strip() for line in body.splitlines() if len(line.strip()) > 20]
        outside = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", text, flags=re.S)
        public += outside
    lines = [line for line in lines if line not in public]
    assert lines
    return lines


# --- answer sets -------------------------------------------------------------------------------

def correct():
    return solution_answers()


def partial_hinge_and_naive():
    blank, right = blank_answers(), solution_answers()
    return _with(blank, multiclass_hinge_loss=right["multiclass_hinge_loss"],
                 svm_loss_naive=right["svm_loss_naive"])


def mistake_hinge_counts_correct_class():
    return _replace(solution_answers(), "multiclass_hinge_loss", "    margins[rows, y] = 0.0\n", "")


def mistake_naive_missing_margin():
    return _replace(solution_answers(), "svm_loss_naive", "margin = scores[j] - correct + 1.0",
                    "margin = scores[j] - correct")


def mistake_vectorized_sum_not_mean():
    return _replace(solution_answers(), "svm_loss_vectorized",
                    "loss = np.sum(margins[counted]) / num_examples", "loss = np.sum(margins[counted])")


def mistake_vectorized_reg_gradient():
    return _replace(solution_answers(), "svm_loss_vectorized", "X / num_examples + 2 * reg * W",
                    "X / num_examples + reg * W")


def mistake_vectorized_missing_1_over_n():
    return _replace(solution_answers(), "svm_loss_vectorized", "dW = coefficients.T @ X / num_examples",
                    "dW = coefficients.T @ X")


def mistake_softmax_unstable():
    return _replace(solution_answers(), "softmax_loss_vectorized",
                    "shifted = scores - scores.max(axis=1, keepdims=True)", "shifted = scores")


def vectorized_with_a_loop():
    return _replace(solution_answers(), "svm_loss_vectorized",
                    "    margins[rows, y] = 0.0\n",
                    "    for i in range(num_examples):\n        margins[i, y[i]] = 0.0\n")


def vectorized_loop_hidden_in_a_helper():
    answers = _replace(solution_answers(), "svm_loss_vectorized",
                       "    margins[rows, y] = 0.0\n", "    _zero_correct(margins, y)\n")
    answers["svm_loss_vectorized"] = (
        "def _zero_correct(margins, y):\n    for i in range(len(y)):\n        margins[i, y[i]] = 0.0\n\n\n"
        + answers["svm_loss_vectorized"])
    return answers


def training_does_not_learn():
    return _replace(solution_answers(), "train_linear_classifier", "        W -= learning_rate * dW\n",
                    "        pass\n")


# --- cheats (each on top of blank answers, so honest work is worth 0) --------------------------

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
    "cheat_forge_records": ZERO_FUNCTIONS + '''
import glob, os
def _forge(info):
    for folder in glob.glob("/scratch/**/records", recursive=True):
        for name in ("hinge__random", "svm_naive__random_0__loss"):
            np.save(os.path.join(folder, name + ".npy"), np.zeros(3))
get_ipython().events.register("post_run_cell", lambda result: _forge(None))
''',
    "cheat_read_solutions": '''
import glob, json, re
_found = []
for pattern in ("/work/**/solutions/**/*.ipynb", "/root/**/*.ipynb", "/**/hinge_loss.ipynb",
                "/**/.reference/**/*.npy", "/**/gradebook.db"):
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
    "cheat_write_outside_and_network": ZERO_FUNCTIONS + f'''
import os, socket, subprocess
for path in ("{ESCAPE_MARKER}", "/work/main/ESCAPED", os.path.expanduser("~/../../ESCAPED")):
    try:
        open(path, "w").write("escaped")
    except OSError:
        pass
try:
    socket.create_connection(("pypi.org", 443), timeout=3)
    open("/scratch/work/NETWORK_OK", "w").write("yes")
except OSError:
    pass
''',
    "cheat_leak_hidden_tests": ZERO_FUNCTIONS + '''
import inspect
def multiclass_hinge_loss(scores, y):
    caller = inspect.stack()[1]
    raise AssertionError("LEAK " + "".join(caller.frame.f_globals.get("_ih", ["?"])[-1:]))
''',
}


def _cheat(code: str):
    """The cheat in the first answer cell, the other answer cells emptied (so the cheat's own
    definitions stay in force for every test): honest work worth 0."""
    def answers():
        emptied = {grade_id: "" for grade_id in ANSWERS}
        return _with(emptied, multiclass_hinge_loss=code + "\n")
    return answers


# --- notebook-level mutations --------------------------------------------------------------------

def _strip_ids(notebook):
    for cell in notebook["cells"]:
        cell["metadata"].pop("nbgrader", None)
    return notebook


def _duplicate_answer(notebook):
    index = next(i for i, c in enumerate(notebook["cells"]) if _grade_id(c) == "svm_loss_naive")
    notebook["cells"].insert(index + 1, copy.deepcopy(notebook["cells"][index]))
    return notebook


def _delete_tests(notebook):
    notebook["cells"] = [c for c in notebook["cells"] if not (_grade_id(c) or "").startswith("test_")]
    return notebook


def _reorder(notebook):
    tests = [c for c in notebook["cells"] if (_grade_id(c) or "").startswith("test_")]
    others = [c for c in notebook["cells"] if c not in tests]
    notebook["cells"] = tests + others
    return notebook


def _retype_naive(notebook):
    for cell in notebook["cells"]:
        if _grade_id(cell) == "svm_loss_naive":
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


def _other_assignment(folder: Path) -> None:
    notebook = {"cells": [{"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "conv_forward", "solution": True}},
                           "source": "def conv_forward(x, w):\n    return x\n", "outputs": [], "execution_count": None}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "conv_layer.ipynb").write_text(json.dumps(notebook))


def _solution_file(folder: Path, name: str) -> None:
    (folder / name).write_text(json.dumps(student_notebook(solution_answers())))


def _code_appended(grade_id: str, code: str):
    def answers():
        right = solution_answers()
        return _with(right, **{grade_id: right[grade_id] + "\n" + code})
    return answers


CELL_SECONDS = 20  # the bank runs with short limits (tests/test_autograder.py)


def cases() -> list[Case]:
    bank = [
        _notebook_case("correct", 100, correct),
        _notebook_case("blank", 0, blank_answers),
        _notebook_case("partial_hinge_and_naive", 30, partial_hinge_and_naive),
        _notebook_case("mistake_hinge_counts_correct_class", 90, mistake_hinge_counts_correct_class),
        _notebook_case("mistake_naive_missing_margin", 70, mistake_naive_missing_margin),
        _notebook_case("mistake_vectorized_sum_not_mean", 70, mistake_vectorized_sum_not_mean),
        _notebook_case("mistake_vectorized_reg_gradient", 70, mistake_vectorized_reg_gradient),
        # N times too large a gradient still trains (the step is just larger): only the loss tests fail.
        _notebook_case("mistake_vectorized_missing_1_over_n", 70, mistake_vectorized_missing_1_over_n),
        _notebook_case("mistake_softmax_unstable", 80, mistake_softmax_unstable),
        _notebook_case("vectorized_with_a_loop", 80, vectorized_with_a_loop),
        _notebook_case("vectorized_loop_hidden_in_a_helper", 80, vectorized_loop_hidden_in_a_helper),
        _notebook_case("training_does_not_learn", 80, training_does_not_learn),
        # bad input
        Case("invalid_json", 0, lambda f: (f / NOTEBOOK).write_text('{"cells": [ '), "ungradable: invalid notebook"),
        Case("other_assignment", 0, _other_assignment, "ungradable: not a notebook of this assignment"),
        Case("no_notebook", 0, lambda f: (f / "answers.py").write_text("print('hi')\n"), "ungradable: no notebook"),
        Case("two_notebooks_none_named", 0,
             lambda f: (_solution_file(f, "a.ipynb"), _solution_file(f, "b.ipynb")), "ungradable: 2 notebooks"),
        Case("two_notebooks_one_named", 100,
             lambda f: (_solution_file(f, NOTEBOOK), _solution_file(f, "scratch.ipynb")), "other notebook(s) ignored"),
        Case("renamed_notebook", 100, lambda f: _solution_file(f, "hinge_loss (1).ipynb"), "notebook named hinge_loss (1).ipynb"),
        _notebook_case("missing_cell_ids", 100, correct, "no cell carries this assignment's cell ids", mutate=_strip_ids),
        _notebook_case("duplicated_cell_id", 100, correct, "appears more than once", mutate=_duplicate_answer),
        _notebook_case("test_cells_deleted", 100, correct, "deleted or re-labelled", mutate=_delete_tests),
        _notebook_case("cells_reordered", 100, correct, mutate=_reorder),
        _notebook_case("answer_retyped_to_markdown", 70, correct, "not a code cell", mutate=_retype_naive),
        _notebook_case("tests_relabelled_and_emptied", 0, blank_answers, mutate=_relabel_tests),
        _notebook_case("kernel_dies", 80, _code_appended("predict", "import os\nos._exit(1)\n"), "kernel died"),
        _notebook_case("cell_never_ends", 100, _code_appended("predict", "import time\ntime.sleep(10**6)\n"),
                       "ran longer than"),
        _notebook_case("cell_ignores_interrupts", 80, _code_appended(
            "predict", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"),
            "stopped at the time limit"),
        _notebook_case("eats_memory", 100, _code_appended("predict", "hog = [bytearray(2**30) for _ in range(64)]\n")),
        _notebook_case("warnings_on_stderr", 100, _code_appended("multiclass_hinge_loss", (
            "import sys, warnings, logging\nwarnings.warn('deprecated thing', DeprecationWarning)\n"
            "warnings.warn('a user warning')\nprint('W0000 absl: something', file=sys.stderr)\n"
            "logging.getLogger('tensorflow').warning('TF says hi')\n"))),
        _notebook_case("output_flood", 100, _code_appended("predict", "for _ in range(20000):\n    print('x' * 1000)\n"),
                       "output beyond"),
    ]
    for name, code in CHEATS.items():
        bank.append(_notebook_case(name, 0, _cheat(code)))
    return bank


def write_bank(root: Path) -> dict[str, Case]:
    """Write every case's folder under ``root``; return the cases by student id."""
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for case in cases():
        case.write(root)
        written[case.name] = case
    return written
