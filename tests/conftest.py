"""Shared fixtures: the repository root, an isolated cache for the course library, the sandbox,
and every assignment's bank graded once per session."""

# The environment as the test run was started, taken before anything imports ``cvcourse``
# (``cvcourse.devices`` sets KERAS_BACKEND, TF_CPP_MIN_LOG_LEVEL, XLA_FLAGS... in os.environ at
# import): every subprocess a test starts builds its environment from this snapshot
# (``subprocess_env``), so what one import set can never leak into a later child, and a child
# that prints native logs is seen doing so.
import os

STARTING_ENVIRONMENT = dict(os.environ)

import dataclasses
import importlib
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the banks package

from autograder.config import known_assignments, load_assignment  # noqa: E402
from banks.common import Case, Probe  # noqa: E402

ASSIGNMENTS = known_assignments()
BANKS = {name: importlib.import_module(f"banks.{name}") for name in ASSIGNMENTS}

matplotlib.use("Agg")  # tests never open windows

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


def subprocess_env(*, unset: tuple[str, ...] = (), **overrides: str) -> dict[str, str]:
    """An environment for a child process: the run's starting environment (never the current
    ``os.environ``), without the ``unset`` variables, with ``overrides`` on top."""
    environment = {key: value for key, value in STARTING_ENVIRONMENT.items() if key not in unset}
    environment.update(overrides)
    return environment


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """Point the course library's on-disk cache at an empty folder and clear its memory caches."""
    from cvcourse import data

    cache = tmp_path / "cache"
    monkeypatch.setenv("CVCOURSE_CACHE_DIR", str(cache))
    data._fashion_mnist.cache_clear()
    yield cache
    data._fashion_mnist.cache_clear()


@pytest.fixture(scope="session")
def sandbox():
    """Skip a test that needs bubblewrap where it is not usable, or fail it when the run must
    have the sandbox (CI sets CI_REQUIRE_SANDBOX=1: a missing sandbox must never pass as skips)."""
    import os

    from autograder.sandbox import bubblewrap_problem

    problem = bubblewrap_problem()
    if problem:
        if os.environ.get("CI_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"CI_REQUIRE_SANDBOX=1 but the sandbox is not usable: {problem}")
        pytest.skip(f"bubblewrap is not usable here: {problem}")


class ProbeServer:
    """A TCP server on the host's loopback that counts connections: sandboxed code must never reach it."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def stop(self):
        self.running = False
        self.thread.join()
        self.server.close()


@dataclass
class GradedBank:
    root: Path
    out: Path
    cases: dict[str, Case]
    results: dict[str, dict]  # by student id
    probe: Probe
    connections: int


@pytest.fixture(scope="session")
def graded_bank(tmp_path_factory, sandbox):
    """``graded_bank(name)``: that assignment's bank, graded once per session."""
    done: dict[str, GradedBank] = {}

    def grade(name: str) -> GradedBank:
        if name not in done:
            root = tmp_path_factory.mktemp(f"bank-{name}")
            server = ProbeServer()
            try:
                probe = Probe(paths=tuple(str(p / "ESCAPED") for p in (root, root / "out", Path(__file__).parents[1])),
                              port=server.port)
                bank = BANKS[name]
                cases = {case.name: case for case in bank.cases(probe)}
                for case in cases.values():
                    case.write(root / "submissions")
                config = load_assignment(name)
                if getattr(bank, "LIMITS", None):
                    config = dataclasses.replace(config, limits=bank.LIMITS)
                from autograder.grade import grade_class

                results = grade_class(name, root / "submissions", root / "out", workers=2, progress=False,
                                      config=config)
            finally:
                server.stop()
            done[name] = GradedBank(root, root / "out", cases, {r["student_id"]: r for r in results}, probe,
                                    server.connections)
        return done[name]

    return grade


