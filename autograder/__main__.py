"""Command line: ``python -m autograder release|grade ...`` (run from the repository root)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    release = commands.add_parser("release", help="generate the student version with nbgrader")
    release.add_argument("assignment")
    grade = commands.add_parser("grade", help="grade a class's submissions")
    grade.add_argument("assignment")
    grade.add_argument("submissions", type=Path, help="folder (or .zip) with one sub-folder per student")
    grade.add_argument("--out", type=Path, required=True, help="output folder")
    grade.add_argument("--workers", type=int, default=None, help="parallel runs (default: number of cores)")
    grade.add_argument("--unsafe", action="store_true",
                       help="grade without a sandbox (student code can then read and write your files)")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from .config import ConfigError
    from .ingest import IngestError
    from .sandbox import SandboxUnavailable

    try:
        if args.command == "release":
            from .release import generate_assignment

            print(f"student version written to {generate_assignment(args.assignment)}")
            return 0
        from .grade import grade_class

        if args.unsafe:
            print("WARNING: grading without a sandbox (--unsafe)", file=sys.stderr)
        results = grade_class(args.assignment, args.submissions, args.out, workers=args.workers,
                              unsafe=args.unsafe, progress=not args.quiet)
    except (ConfigError, IngestError, SandboxUnavailable, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    ungradable = sum(r["status"].startswith("ungradable") for r in results)
    print(f"{len(results)} submissions graded ({ungradable} ungradable): {args.out / 'grades.csv'}, "
          f"{args.out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
