"""Shared fixtures: the repository root and an isolated cache for the course library."""

from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # tests never open windows

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """Point the course library's on-disk cache at an empty folder and clear its memory caches."""
    from cvcourse import data

    cache = tmp_path / "cache"
    monkeypatch.setenv("CVCOURSE_CACHE_DIR", str(cache))
    data._fashion_mnist.cache_clear()
    yield cache
    data._fashion_mnist.cache_clear()
