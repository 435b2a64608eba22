"""What an instructor gets wrong on the command line or in autograder/assignments.toml: each a
one-line error that names the problem, exit status 2, no traceback, and nothing graded
(issue 20). Nothing here starts a kernel: every error is found before grading."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import subprocess_env

import autograder.config
import autograder.grade
from autograder.__main__ import main as autograder_main
from autograder.config import DEFAULT_LIMITS, LIMIT_KEYS, ConfigError, load_assignment

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "a1_hinge_loss"
SETTINGS = (REPO_ROOT / "autograder" / "assignments.toml").read_text()


def _one_line_error(capsys, code: int, *fragments: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """``settings(text)``: grade with this assignments.toml instead of the course's."""
    def use(text: str) -> Path:
        path = tmp_path / "assignments.toml"
        path.write_text(text)
        monkeypatch.setattr(autograder.config, "SETTINGS_FILE", path)
        return path
    return use


@pytest.fixture
def class_folder(tmp_path) -> Path:
    folder = tmp_path / "submissions" / "ada"
    folder.mkdir(parents=True)
    (folder / "hinge_loss.ipynb").write_text("{}")
    return folder.parent


def _grade(submissions: Path, out: Path, assignment: str = ASSIGNMENT) -> int:
    return autograder_main(["grade", assignment, str(submissions), "--out", str(out), "--quiet"])


ALL_LIMITS = list(LIMIT_KEYS) + list(DEFAULT_LIMITS)


@pytest.mark.parametrize("key", ALL_LIMITS)
@pytest.mark.parametrize("value", ["0", "-5", '"ten"', "1.5", "true"])
def test_a_limit_that_is_not_a_positive_whole_number(settings, class_folder, tmp_path, capsys, key, value):
    settings(SETTINGS + f"\n[a9_broken]\nnotebook = \"hinge_loss.ipynb\"\n{key} = {value}\n")
    line = _one_line_error(capsys, _grade(class_folder, tmp_path / "out", "a9_broken"), "a9_broken", key,
                           "positive whole number")
    assert value.strip('"').lower() in line.lower()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key", LIMIT_KEYS)
def test_a_missing_limit_is_named(settings, class_folder, tmp_path, capsys, key):
    lines = [line for line in SETTINGS.splitlines() if not line.startswith(f"{key} =")]
    settings("\n".join(lines) + "\n")  # gone from [defaults] and from the assignment's section
    _one_line_error(capsys, _grade(class_folder, tmp_path / "out"), "lacks settings", key)


def test_every_limit_is_checked_whichever_it_is():
    """config.py validates every key of Limits: a limit added later is checked the same way."""
    fields = {f.name for f in dataclasses.fields(autograder.config.Limits)}
    assert fields == set(ALL_LIMITS)


def test_a_settings_file_that_is_not_toml(settings, class_folder, tmp_path, capsys):
    settings(SETTINGS + "\n[a1_hinge_loss\n")
    _one_line_error(capsys, _grade(class_folder, tmp_path / "out"), "not valid TOML")
    _one_line_error(capsys, autograder_main(["list"]), "not valid TOML")


def test_an_unknown_assignment(class_folder, tmp_path, capsys):
    _one_line_error(capsys, _grade(class_folder, tmp_path / "out", "a9_unknown"), "unknown assignment 'a9_unknown'",
                    "a1_hinge_loss")


@pytest.mark.parametrize("damage", ["not json", "no cells", "cells not a list", "duplicated ids", "missing"])
def test_a_damaged_source_notebook(monkeypatch, class_folder, tmp_path, capsys, damage):
    solutions = tmp_path / "solutions"
    shutil.copytree(REPO_ROOT / "solutions" / ASSIGNMENT, solutions / ASSIGNMENT)
    path = solutions / ASSIGNMENT / "hinge_loss.ipynb"
    notebook = json.loads(path.read_text())
    if damage == "not json":
        path.write_text(path.read_text()[:5000])
    elif damage == "no cells":
        path.write_text(json.dumps({"metadata": {}}))
    elif damage == "cells not a list":
        path.write_text(json.dumps({**notebook, "cells": 3}))
    elif damage == "duplicated ids":
        notebook["cells"].append(notebook["cells"][-1])
        path.write_text(json.dumps(notebook))
    else:
        path.unlink()
    real = load_assignment
    monkeypatch.setattr(autograder.grade, "load_assignment",
                        lambda name: dataclasses.replace(real(name), solutions_dir=solutions))
    line = _one_line_error(capsys, _grade(class_folder, tmp_path / "out"), str(path))
    assert ("does not exist" in line) if damage == "missing" else ("damaged" in line or "not valid JSON" in line)


def test_a_missing_submissions_folder(tmp_path, capsys):
    _one_line_error(capsys, _grade(tmp_path / "missing", tmp_path / "out"), "does not exist")


def test_workers_must_be_positive(class_folder, tmp_path, capsys):
    code = autograder_main(["grade", ASSIGNMENT, str(class_folder), "--out", str(tmp_path / "out"), "--workers", "0"])
    _one_line_error(capsys, code, "--workers")


def test_the_real_command_line_exits_2_without_a_traceback(tmp_path):
    """The same through ``python -m autograder``, as an instructor types it."""
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", "a9_unknown", str(tmp_path),
                             "--out", str(tmp_path / "out")], cwd=REPO_ROOT, capture_output=True, text=True,
                            env=subprocess_env())  # the run's starting environment (tests/conftest.py)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "Traceback" not in result.stderr


def test_config_errors_are_config_errors(settings):
    settings(SETTINGS.replace("wall_seconds = 180", "wall_seconds = 0"))
    with pytest.raises(ConfigError, match="wall_seconds must be a positive whole number, got 0"):
        load_assignment(ASSIGNMENT)
