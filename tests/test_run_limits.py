"""What one run may write and how many processes it may start (disk_mb, max_processes), and that
nothing it started outlives it. Each hostile submission must end alone, with a note, keeping the
points it earned before; the next submission of the same grading run is graded normally."""

from __future__ import annotations

import dataclasses
import os
import secrets
from pathlib import Path

import pytest

from autograder.config import ConfigError, load_assignment
from autograder.grade import grade_class
from autograder.sandbox import CGROUP_PREFIX, RunCgroup, cgroup_bases, nproc_fallback, reap_stale_cgroups
from banks import a1_hinge_loss as bank
from banks.common import Probe, appended, notebook_case, solution_answers

HOMEWORK = bank.HOMEWORK
GB = 2**30


def _needs_cgroups() -> None:
    if not cgroup_bases():
        if os.environ.get("CI_REQUIRE_CGROUPS") == "1":
            pytest.fail("CI_REQUIRE_CGROUPS=1 but no writable cgroup (v1 pids+memory, or v2) is available")
        pytest.skip("no writable cgroup here (the grader is not root, or cgroupfs is not mounted)")


def _writer(folder: str, files: int) -> str:
    """Write ``files`` files of 256 MB (just under the file-size limit) in 8 MB chunks into
    ``folder``, stopping at the first error: 3 GB for 12 files."""
    return f'''
import os as _os
_written = 0
try:
    for _i in range({files}):
        with open(_os.path.join({folder}, "fill%d" % _i), "wb") as _file:
            for _ in range(32):
                _file.write(b"x" * (8 * 2**20))
                _written += 8 * 2**20
except OSError as _error:
    print("stopped after", _written // 2**20, "MB:", _error)
'''


FORK_5000 = '''
import subprocess as _subprocess
_children = []
try:
    for _ in range(5000):  # bounded: sleeping children, never a fork bomb
        _children.append(_subprocess.Popen(["sleep", "300"]))
except OSError as _error:
    print("stopped after", len(_children), "processes:", _error)
'''


def _case(name: str, cell: str, code: str, expected: float, note: str = ""):
    return notebook_case(HOMEWORK, name, expected, lambda: appended(solution_answers(HOMEWORK), cell, code),
                         status=f"the notebook stopped early: {note}" if note else "graded")


def _grade(tmp_path: Path, cases, out: Path | None = None, **options) -> dict[str, dict]:
    for case in cases:
        case.write(tmp_path / "submissions")
    config = dataclasses.replace(load_assignment(HOMEWORK.name), limits=bank.LIMITS)
    results = grade_class(HOMEWORK.name, tmp_path / "submissions", out or tmp_path / "out", workers=2,
                          progress=False, config=config, **options)
    return {result["student_id"]: result for result in results}


def _check(results: dict[str, dict], cases) -> None:
    for case in cases:
        result = results[case.name]
        failing = [(t["grade_id"], t["reason"][:200]) for t in result["tests"] if not t["passed"]]
        assert result["score"] == case.expected_score, (case.name, result["status"], failing)
        if case.status == "graded":  # nothing to note
            assert result["status"] == "graded", (case.name, result["status"])
        else:
            assert case.status in result["status"], (case.name, result["status"])


LIMIT_CASES = {
    # The default disk_mb (1024) against 3 GB written into the working folder (in the first
    # answer cell: nothing earned), the home folder and /tmp (later: the tests before count).
    "work": lambda: _case("a_work", "multiclass_hinge_loss", _writer('"."', 12), 0, DISK_NOTE),
    "home": lambda: _case("b_home", "svm_loss_vectorized", _writer('_os.path.expanduser("~")', 12), 30, DISK_NOTE),
    "tmp": lambda: _case("c_tmp", "softmax_loss_vectorized", _writer('"/tmp"', 12), 60, DISK_NOTE),
    "processes": lambda: _case("d_processes", "train_linear_classifier", FORK_5000, 80, PROCESS_NOTE),
    # Graded after them, by the same grading run.
    "correct": lambda: _case("z_correct", "predict", "", 100),
}
DISK_NOTE = "the run wrote more than 1024 MB"
PROCESS_NOTE = "the run tried to start more than 256 processes and threads at once"


@pytest.fixture(scope="module")
def graded(tmp_path_factory, sandbox):
    """All the cases above, graded once, together (one reference run, two workers)."""
    assert bank.LIMITS.disk_mb == 1024 and bank.LIMITS.max_processes == 256
    names = [name for name in LIMIT_CASES if name != "processes" or cgroup_bases()]
    cases = {name: LIMIT_CASES[name]() for name in names}
    root = tmp_path_factory.mktemp("limits")
    return root, cases, _grade(root, list(cases.values()))


@pytest.mark.parametrize("where", ["work", "home", "tmp"])
def test_writing_3_gb_ends_that_submission_alone(graded, where):
    _, cases, results = graded
    _check(results, [cases[where], cases["correct"]])


def test_5000_processes_end_that_submission_alone(graded):
    _needs_cgroups()
    _, cases, results = graded
    _check(results, [cases["processes"], cases["correct"]])
    assert not _leftover_cgroups()


def _leftover_cgroups() -> list[str]:
    return [entry.name for base in set(cgroup_bases().values()) for entry in base.iterdir()
            if entry.name.startswith(f"{CGROUP_PREFIX}{os.getpid()}.")]


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker.encode() in Path(entry.path, "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_no_process_outlives_its_run_even_unsandboxed(graded):
    """--unsafe: a child in a session of its own is out of the kernel's process group, so only
    the run's cgroup reaches it. (Graded into the same folder: the reference is reused.)"""
    _needs_cgroups()
    root, _, _ = graded
    marker = f"{secrets.randbelow(10**6) + 10**6}.{secrets.randbelow(10**6)}"  # a unique sleep time
    spawn = (f'import subprocess as _sp\n_sp.Popen(["sleep", "{marker}"], start_new_session=True,'
             f' stdout=_sp.DEVNULL, stderr=_sp.DEVNULL)\n')
    blank = next(case for case in bank.cases(Probe()) if case.name == "blank")
    cases = [_case("unsafe_daemon", "multiclass_hinge_loss", spawn, 100), blank]
    results = _grade(root / "unsafe", cases, unsafe=True, out=root / "out")
    _check(results, cases)
    assert not _processes_with(marker)
    assert not _leftover_cgroups()


def test_processes_that_each_stay_under_the_memory_limit_cannot_add_up(tmp_path, sandbox):
    """RLIMIT_DATA is per process: four children of 800 MB each pass it (memory_mb 1024); the
    run's memory cgroup (1024 MB plus its file systems plus 512 MB) ends the run."""
    _needs_cgroups()
    from autograder.config import Limits
    from autograder.kernel import SandboxedKernel

    with SandboxedKernel(tmp_path / "scratch", Limits(60, 40, 60, 1024, 64, 1, disk_mb=64)) as kernel:
        run = kernel.run_cell(
            "import multiprocessing as mp, time\n"
            "def hog():\n    block = b'x' * (800 * 2**20)\n    time.sleep(20)\n"
            "children = [mp.get_context('fork').Process(target=hog) for _ in range(4)]\n"
            "[child.start() for child in children]\n[child.join() for child in children]\n")
    assert run.status == "died", (run.status, run.outputs)
    assert kernel.stopped == "the run's processes together used more memory than allowed (1024 MB, plus what it wrote)"
    assert run.seconds < 20


def test_stale_cgroups_of_a_dead_grader_are_reaped(tmp_path):
    _needs_cgroups()
    from autograder.config import Limits

    cgroup = RunCgroup.create(Limits(60, 60, 60, 512, 64, 1))
    assert cgroup is not None
    import subprocess

    sleeper = subprocess.Popen([*cgroup.launcher(), "sleep", "300"])
    try:
        for _ in range(100):
            if cgroup.pids():
                break
            import time
            time.sleep(0.02)
        assert cgroup.pids() == [sleeper.pid]
        # As a grader that was killed would leave it: renamed to a pid that does not run.
        stale = {name: folder.with_name(f"{CGROUP_PREFIX}999999999.1.{secrets.token_hex(4)}")
                 for name, folder in cgroup.folders.items()}
        for name, folder in cgroup.folders.items():
            if folder.exists():
                folder.rename(stale[name])
        assert set(reap_stale_cgroups(force=True)) == {folder.name for folder in stale.values()}
        assert sleeper.wait(timeout=10) == -9
        assert not any(folder.exists() for folder in stale.values())
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        cgroup.close()


def test_without_cgroups_rlimit_nproc_allows_what_the_user_runs_plus_the_bound():
    # Every task of this process alone already counts (its threads too).
    own = len(os.listdir("/proc/self/task"))
    assert nproc_fallback(256) >= 256 + own


@pytest.mark.parametrize("value", ['"a lot"', "0", "-5", "1.5", "true"])
@pytest.mark.parametrize("key", ["disk_mb", "max_processes"])
def test_a_bad_limit_is_a_clear_error(tmp_path, key, value):
    settings = Path(__file__).resolve().parents[1] / "autograder" / "assignments.toml"
    text = settings.read_text().replace("[a1_hinge_loss]\n", f"[a1_hinge_loss]\n{key} = {value}\n", 1)
    (tmp_path / "assignments.toml").write_text(text)
    with pytest.raises(ConfigError, match=f"{key} must be a positive whole number"):
        load_assignment("a1_hinge_loss", tmp_path / "assignments.toml")


def test_the_limits_default_when_absent(tmp_path):
    settings = Path(__file__).resolve().parents[1] / "autograder" / "assignments.toml"
    text = settings.read_text().replace("disk_mb = 1024\n", "").replace("max_processes = 256\n", "")
    (tmp_path / "assignments.toml").write_text(text)
    limits = load_assignment("a1_hinge_loss", tmp_path / "assignments.toml").limits
    assert (limits.disk_mb, limits.max_processes) == (1024, 256)
