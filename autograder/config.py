"""Per-assignment settings, read from ``autograder/assignments.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS_FILE = Path(__file__).with_name("assignments.toml")
LIMIT_KEYS = ("wall_seconds", "cell_seconds", "cpu_seconds", "memory_mb", "output_kb", "records_mb")


class ConfigError(ValueError):
    """The assignment is unknown or its settings are invalid."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission's run (see assignments.toml)."""

    wall_seconds: int
    cell_seconds: int
    cpu_seconds: int
    memory_mb: int
    output_kb: int
    records_mb: int


@dataclass(frozen=True)
class SourceCheck:
    """Syntax the named function may not use, checked on the submitted source."""

    function: str
    forbid: tuple[str, ...]


@dataclass(frozen=True)
class AssignmentConfig:
    name: str
    notebook: str
    limits: Limits
    source_checks: dict[str, SourceCheck] = field(default_factory=dict)

    @property
    def source_path(self) -> Path:
        """The instructor's nbgrader source notebook (solutions and hidden tests)."""
        return REPO_ROOT / "solutions" / self.name / self.notebook

    @property
    def release_path(self) -> Path:
        """The generated student version."""
        return REPO_ROOT / "assignments" / self.name / self.notebook


def load_assignment(name: str, settings_file: Path = SETTINGS_FILE) -> AssignmentConfig:
    """Settings of one assignment, defaults filled in.

    Raises :class:`ConfigError` for an assignment with no section or no source notebook.
    """
    settings = tomllib.loads(settings_file.read_text())
    known = sorted(key for key in settings if key != "defaults")
    if name not in settings or name == "defaults":
        raise ConfigError(f"unknown assignment {name!r}; known: {', '.join(known) or 'none'}")
    section = {**settings.get("defaults", {}), **settings[name]}
    missing = [key for key in LIMIT_KEYS if key not in section]
    if missing or "notebook" not in section:
        raise ConfigError(f"assignment {name!r} lacks settings: {missing + (['notebook'] if 'notebook' not in section else [])}")
    limits = Limits(**{key: int(section[key]) for key in LIMIT_KEYS})
    if min(limits.__dict__.values()) <= 0:
        raise ConfigError(f"assignment {name!r}: every limit must be positive, got {limits}")
    checks = {
        cell: SourceCheck(function=spec["function"], forbid=tuple(spec["forbid"]))
        for cell, spec in section.get("source_checks", {}).items()
    }
    config = AssignmentConfig(name=name, notebook=section["notebook"], limits=limits, source_checks=checks)
    if not config.source_path.is_file():
        raise ConfigError(f"assignment {name!r}: source notebook {config.source_path} does not exist")
    return config
