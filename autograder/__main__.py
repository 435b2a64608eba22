"""Command line: ``python -m autograder list|release|grade|export ...`` (run from the repository root)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def list_assignments() -> str:
    """Every assignment with its points, limits and rules, and the evaluators available."""
    from .config import known_assignments, load_assignment
    from .evaluators import EVALUATORS
    from .notebooks import read_source_notebook

    lines = []
    for name in known_assignments():
        config = load_assignment(name)
        source = read_source_notebook(config.source_path)
        limits = config.limits
        lines.append(f"{name} ({config.notebook}): {len(source.tests)} tests, {source.max_score:g} points")
        lines.append(f"  limits: {limits.wall_seconds} s in all, {limits.cell_seconds} s per cell, "
                     f"{limits.cpu_seconds} s CPU, {limits.memory_mb} MB, {limits.output_kb} KB output, "
                     f"{limits.records_mb} MB records per test")
        for test in source.tests:
            rules = config.rules_for(test.grade_id)
            lines.append(f"  {test.grade_id:<34} {test.points:>4g} points"
                         + (f"  rules: {rules.describe()}" if rules else ""))
    lines.append("evaluators: " + ", ".join(sorted(EVALUATORS)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every assignment with its points, limits and rules")
    release = commands.add_parser("release", help="generate the student version(s) with nbgrader")
    release.add_argument("assignments", nargs="*", help="default: every assignment")
    grade = commands.add_parser("grade", help="grade a class's submissions")
    grade.add_argument("assignment")
    grade.add_argument("submissions", type=Path,
                       help="folder or .zip: one sub-folder per student, or an LMS download (Canvas, Moodle) "
                            "or an nbgrader exchange collection")
    grade.add_argument("--out", type=Path, required=True, help="output folder")
    grade.add_argument("--workers", type=int, default=None, help="parallel runs (default: number of cores)")
    grade.add_argument("--unsafe", action="store_true",
                       help="grade without a sandbox (student code can then read and write your files)")
    grade.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="run the sandboxed runs on this Dask cluster's workers (see README)")
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    export = commands.add_parser("export", help="grades back to the LMS: a Canvas gradebook or a Moodle import file")
    export.add_argument("out", type=Path, help="the output folder of a grading run")
    export.add_argument("--format", required=True, choices=("canvas", "moodle"))
    export.add_argument("--roster", type=Path,
                        help="Canvas: the gradebook export (required); Moodle: the grading worksheet (optional)")
    export.add_argument("--column", help="Canvas: the gradebook column to fill (default: the one named like the assignment)")
    export.add_argument("--no-rescale", action="store_true", help="keep the grader's points, not the LMS's")
    export.add_argument("--to", type=Path, default=None, help="file to write (default: OUT/FORMAT_import.csv)")
    args = parser.parse_args(argv)

    from .config import ConfigError
    from .ingest import IngestError
    from .sandbox import SandboxUnavailable
    from .storage import OutputDiskFull, is_disk_full

    if args.command == "grade" and args.workers is not None and args.workers < 1:
        print(f"error: --workers must be 1 or more, got {args.workers}", file=sys.stderr)
        return 2

    try:
        if args.command == "list":
            print(list_assignments())
            return 0
        if args.command == "release":
            from .config import known_assignments
            from .release import generate_assignment

            for name in args.assignments or known_assignments():
                print(f"student version written to {generate_assignment(name)}")
            return 0
        if args.command == "export":
            from .export import ExportError, export as export_grades

            try:
                report = export_grades(args.out, args.format, args.roster, args.to, column=args.column,
                                       rescale=not args.no_rescale)
            except ExportError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            print("\n".join(report.summary()))
            return 0
        from .grade import grade_class

        if args.unsafe:
            print("WARNING: grading without a sandbox (--unsafe)", file=sys.stderr)
        results = grade_class(args.assignment, args.submissions, args.out, workers=args.workers,
                              unsafe=args.unsafe, progress=not args.quiet, scheduler=args.scheduler)
    except (ConfigError, IngestError, SandboxUnavailable, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if not is_disk_full(error):
            raise
        print(f"error: {error if isinstance(error, OutputDiskFull) else OutputDiskFull(args.out)}", file=sys.stderr)
        return 1
    ungradable = sum(r["status"].startswith("ungradable") for r in results)
    print(f"{len(results)} submissions graded ({ungradable} ungradable): {args.out / 'grades.csv'}, "
          f"{args.out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
