"""Time the book build: a cold build (empty cache), each chapter's execution time, and a rebuild
with nothing changed. Also reports the size of the installed environment.

    python benchmarks/book_build.py [--output DIR]

Run from the repository root inside the course environment (``make benchmark-book``). Prints a
table and writes ``book_build.json`` to the output folder (a temporary one by default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def build(output: Path) -> float:
    """Build the book into ``output`` as `make book` does; return the wall time in seconds."""
    environment = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "jupyter-book"), "build", str(REPO_ROOT), "--path-output", str(output),
         "--builder", "html", "--warningiserror", "--keep-going"],
        check=True, env=environment, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def chapter_times(output: Path) -> dict[str, float]:
    """Execution seconds per notebook, as recorded by jupyter-cache during the build."""
    from jupyter_cache import get_cache

    cache = get_cache(output / "_build" / ".jupyter_cache")
    times = {}
    for record in cache.list_cache_records():
        path = Path(record.uri)
        times[str(path.relative_to(REPO_ROOT)) if path.is_absolute() else record.uri] = round(
            record.data.get("execution_seconds", float("nan")), 1
        )
    return dict(sorted(times.items()))


def environment_size() -> str:
    result = subprocess.run(["du", "-sh", sys.prefix], capture_output=True, text=True)
    return result.stdout.split()[0] if result.returncode == 0 else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None, help="build folder (default: temporary)")
    args = parser.parse_args()
    output = args.output or Path(tempfile.mkdtemp(prefix="book-benchmark-"))

    cold = build(output)
    per_chapter = chapter_times(output)
    warm = build(output)
    results = {
        "cores": os.cpu_count(),
        "cold_build_seconds": round(cold, 1),
        "rebuild_unchanged_seconds": round(warm, 1),
        "chapter_execution_seconds": per_chapter,
        "environment": sys.prefix,
        "environment_size": environment_size(),
    }
    (output / "book_build.json").write_text(json.dumps(results, indent=2))
    print(f"cores: {results['cores']}")
    print(f"cold build (every chapter executed): {results['cold_build_seconds']} s")
    print(f"rebuild with nothing changed:        {results['rebuild_unchanged_seconds']} s")
    print("chapter execution times:")
    for chapter, seconds in per_chapter.items():
        print(f"  {seconds:7.1f} s  {chapter}")
    print(f"environment {results['environment']}: {results['environment_size']}")
    print(f"results: {output / 'book_build.json'}")


if __name__ == "__main__":
    main()
