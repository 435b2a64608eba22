"""Generate the student version of an assignment with nbgrader: solutions/NAME -> assignments/NAME."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import REPO_ROOT


def generate_assignment(name: str, release_root: Path | None = None) -> Path:
    """Run ``nbgrader generate_assignment`` for ``name``; return the release folder.

    ``release_root`` defaults to the repository (so the result lands in ``assignments/``); tests
    pass a temporary folder to compare a fresh generation with the committed one. nbgrader's
    own gradebook for this step is a throw-away file: grading keeps its own.
    """
    release_root = Path(release_root or REPO_ROOT)
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            str(bin_dir / "nbgrader"), "generate_assignment", name, "--force",
            f"--CourseDirectory.root={REPO_ROOT}",
            "--CourseDirectory.source_directory=solutions",
            f"--CourseDirectory.release_directory={(release_root / 'assignments').resolve()}",
            f"--CourseDirectory.db_url=sqlite:///{Path(scratch) / 'gradebook.db'}",
        ]
        environment = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        result = subprocess.run(command, cwd=scratch, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment failed:\n{result.stdout}\n{result.stderr}")
    return release_root / "assignments" / name
