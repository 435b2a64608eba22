"""Per-assignment settings, read from ``autograder/assignments.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS_FILE = Path(__file__).with_name("assignments.toml")
LIMIT_KEYS = ("wall_seconds", "cell_seconds", "cpu_seconds", "memory_mb", "output_kb", "records_mb")
# Limits with a built-in default (an assignments.toml without them still loads).
DEFAULT_LIMITS = {"disk_mb": 1024, "max_processes": 256}


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
    disk_mb: int = 1024  # all a run writes: scratch, home, /tmp, /dev/shm (see sandbox.py)
    max_processes: int = 256  # tasks (processes and threads) of a run at once


@dataclass(frozen=True)
class Rules:
    """Source rules of one test cell (see :mod:`autograder.analysis`): syntax its code may not
    use (``for``, ``while``, ``comprehension``) and modules it may not reach."""

    forbid_syntax: tuple[str, ...] = ()
    forbid_modules: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.forbid_syntax or self.forbid_modules)

    def describe(self) -> str:
        parts = []
        if self.forbid_syntax:
            parts.append("no " + ", ".join(self.forbid_syntax))
        if self.forbid_modules:
            parts.append("by hand, without " + ", ".join(self.forbid_modules))
        return "; ".join(parts) or "none"


@dataclass(frozen=True)
class AssignmentConfig:
    name: str
    notebook: str
    limits: Limits
    rules: dict[str, Rules] = field(default_factory=dict)  # by test cell; "*": every test cell
    solutions_dir: Path = REPO_ROOT / "solutions"  # tests point this at a copy

    def rules_for(self, test: str) -> Rules:
        """The rules of one test cell: those of every cell, plus its own."""
        common, own = self.rules.get("*", Rules()), self.rules.get(test, Rules())
        return Rules(tuple(dict.fromkeys(common.forbid_syntax + own.forbid_syntax)),
                     tuple(dict.fromkeys(common.forbid_modules + own.forbid_modules)))

    @property
    def source_path(self) -> Path:
        """The instructor's nbgrader source notebook (solutions and hidden tests)."""
        return self.solutions_dir / self.name / self.notebook

    @property
    def release_path(self) -> Path:
        """The generated student version."""
        return REPO_ROOT / "assignments" / self.name / self.notebook


def _rules(assignment: str, where: str, spec: object) -> Rules:
    from .analysis import SYNTAX_RULES

    if not isinstance(spec, dict) or set(spec) - {"forbid_syntax", "forbid_modules"}:
        raise ConfigError(f"assignment {assignment!r}: {where} takes forbid_syntax and forbid_modules only")
    syntax = tuple(spec.get("forbid_syntax", ()))
    unknown = [rule for rule in syntax if rule not in SYNTAX_RULES]
    if unknown:
        raise ConfigError(f"assignment {assignment!r}: unknown forbid_syntax {unknown}; known: {sorted(SYNTAX_RULES)}")
    modules = tuple(spec.get("forbid_modules", ()))
    if not all(isinstance(m, str) and m.replace(".", "").replace("_", "").isalnum() for m in modules):
        raise ConfigError(f"assignment {assignment!r}: forbid_modules must be module names, got {modules}")
    return Rules(syntax, modules)


def _settings(settings_file: Path | None) -> dict:
    """assignments.toml, or a :class:`ConfigError` that says what is wrong with it."""
    path = Path(settings_file or SETTINGS_FILE)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"the settings file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"the settings file {path} is not valid TOML: {error}") from None


def _limit(assignment: str, key: str, value: object) -> int:
    """A limit must be a positive whole number (whichever limit it is)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"assignment {assignment!r}: {key} must be a positive whole number, got {value!r}")
    return value


def known_assignments(settings_file: Path | None = None) -> list[str]:
    return sorted(key for key in _settings(settings_file) if key != "defaults")


def load_assignment(name: str, settings_file: Path | None = None) -> AssignmentConfig:
    """Settings of one assignment, defaults filled in.

    Raises :class:`ConfigError` for an assignment with no section or no source notebook.
    """
    settings = _settings(settings_file)
    known = sorted(key for key in settings if key != "defaults")
    if name not in settings or name == "defaults":
        raise ConfigError(f"unknown assignment {name!r}; known: {', '.join(known) or 'none'}")
    section = {**settings.get("defaults", {}), **settings[name]}
    missing = [key for key in LIMIT_KEYS if key not in section]
    if missing or "notebook" not in section:
        raise ConfigError(f"assignment {name!r} lacks settings: {missing + (['notebook'] if 'notebook' not in section else [])}")
    limits = Limits(**{key: _limit(name, key, section[key]) for key in LIMIT_KEYS},
                    **{key: _limit(name, key, section.get(key, default)) for key, default in DEFAULT_LIMITS.items()})
    if min(limits.__dict__.values()) <= 0:
        raise ConfigError(f"assignment {name!r}: every limit must be positive, got {limits}")
    rules = {test: _rules(name, f"[{name}.rules.{test}]", spec) for test, spec in section.get("rules", {}).items()}
    common = {key: section[key] for key in ("forbid_syntax", "forbid_modules") if key in settings[name]}
    if common:
        rules["*"] = _rules(name, f"[{name}]", common)
    config = AssignmentConfig(name=name, notebook=section["notebook"], limits=limits, rules=rules)
    if not config.source_path.is_file():
        raise ConfigError(f"assignment {name!r}: source notebook {config.source_path} does not exist")
    return config
