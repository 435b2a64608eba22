"""pyproject.toml and environment.yml pin the same packages at the same versions."""

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject_pins(repo_root, extras: tuple[str, ...] | None = None) -> dict[str, str]:
    """Pinned versions of the base dependencies and of the given extras (all extras: None)."""
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if extras is None or name in extras:
            requirements += extra
    pins = {}
    for text in requirements:
        requirement = Requirement(text)
        if _canonical(requirement.name) == "cvcourse":
            continue  # an extra that includes another extra
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", (
            f"{text!r} in pyproject.toml is not pinned with ==")
        pins[_canonical(requirement.name)] = specifiers[0].version
    return pins


def _environment(repo_root) -> dict:
    return yaml.safe_load((repo_root / "environment.yml").read_text())


def _environment_pins(repo_root) -> dict[str, str]:
    dependencies = _environment(repo_root)["dependencies"]
    pip_sections = [d["pip"] for d in dependencies if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    pins = {}
    for line in pip_sections[0]:
        if line.startswith("-e") or line.startswith("--editable"):
            continue
        name, _, version = line.partition("==")
        assert version, f"{line!r} in environment.yml is not pinned with =="
        pins[_canonical(name)] = version
    return pins


def test_pyproject_and_environment_pin_the_same_packages_and_versions(repo_root):
    """environment.yml (Binder, conda) is what readers and students run: the base dependencies
    and the book extra. The test extra (pytest, the browser driver, PyTorch's CPU build for the
    cross-backend test) stays out of it: on Binder, torch would be a CUDA build of several GB."""
    pyproject, environment = _pyproject_pins(repo_root, extras=("book",)), _environment_pins(repo_root)
    assert set(pyproject) - set(environment) == set(), "pinned in pyproject.toml only"
    assert set(environment) - set(pyproject) == set(), "pinned in environment.yml only (or a test-only pin)"
    differing = {n: (pyproject[n], environment[n]) for n in pyproject if pyproject[n] != environment[n]}
    assert differing == {}


def test_environment_installs_the_course_library_and_a_supported_python(repo_root):
    dependencies = _environment(repo_root)["dependencies"]
    pip_lines = next(d["pip"] for d in dependencies if isinstance(d, dict))
    assert "-e ." in pip_lines
    python = next(d for d in dependencies if isinstance(d, str) and d.startswith("python="))
    requires = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Version(python.split("=", 1)[1]) in SpecifierSet(requires)


def test_jupyter_book_is_pinned_below_2(repo_root):
    version = Version(_pyproject_pins(repo_root)["jupyter-book"])
    assert version in SpecifierSet(">=1.0.4,<2")


def test_installed_versions_match_the_pins(repo_root):
    """The environment the tests run in is the pinned one (catches a stale .venv)."""
    from importlib.metadata import version

    # PEP 440 matching: the pin torch==2.13.0 is met by the CPU build 2.13.0+cpu (a local label).
    mismatched = {
        name: (pin, version(name)) for name, pin in _pyproject_pins(repo_root).items()
        if Version(version(name)) not in SpecifierSet(f"=={pin}")
    }
    assert mismatched == {}
