"""Run one assembled notebook and keep what its hidden tests record. Runs INSIDE the sandbox.

This file is copied alone into the sandbox and started as a script, so it imports nothing
from the rest of the grader. It reads the notebook from standard input (it is never written
where the student's code could list it), runs it cell by cell in a fresh IPython kernel, and
writes to ``OUT``:

* ``records/KEY.npy`` (+ ``KEY.json`` options): values passed to ``grader_record`` by hidden
  tests, saved as plain arrays (``allow_pickle=False``: no object can travel this way);
* ``executed.ipynb``: the run's outputs, for an instructor who debugs a submission;
* ``manifest.json``: per cell, its grade id, status (ok, error, timeout, died, not run), the
  error's type and message, and the record keys that appeared while it ran. Rewritten after
  every cell, so a run that is killed still says how far it got.

Nothing here decides a grade: the grader compares the records outside the sandbox.

    python runner.py OUT --cell-seconds S --output-kb K < notebook.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

RECORDER = r'''
def grader_record(key, value, **options):
    """Save a hidden test's value for the grader (a plain numeric array, never an object)."""
    import json as _json, re as _re
    import numpy as _np
    if not isinstance(key, str) or not _re.fullmatch(r"[A-Za-z0-9_.\-/]{1,200}", key):
        raise ValueError(f"grader_record: bad key {key!r}")
    array = _np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"grader_record: the value for {key} is not numeric (dtype {array.dtype})")
    path = __RECORDS__ + "/" + key.replace("/", "__")
    _np.save(path + ".npy", array, allow_pickle=False)
    with open(path + ".json", "w") as _file:
        _json.dump({k: v for k, v in options.items() if isinstance(v, (str, int, float, bool))}, _file)
'''


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--cell-seconds", type=int, required=True)
    parser.add_argument("--output-kb", type=int, required=True)
    args = parser.parse_args()

    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    import nbformat

    records = args.out / "records"
    records.mkdir(parents=True, exist_ok=True)
    work = args.out.parent / "work"
    work.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.from_dict(json.loads(sys.stdin.read()))
    for cell in notebook.cells:  # the on-disk format allows a list of lines; nbclient wants text
        if isinstance(cell.get("source"), list):
            cell.source = "".join(cell.source)
    output_budget = [args.output_kb * 1024]

    class BoundedOutputClient(NotebookClient):
        """Drops outputs once the run's output budget is spent (floods cannot fill memory)."""

        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {}), default=str))
            if size > output_budget[0]:
                output_budget[0] = 0
                return None
            output_budget[0] -= size
            return super().output(outs, msg, display_id, cell_index)

    client = BoundedOutputClient(
        notebook, timeout=args.cell_seconds, allow_errors=True, interrupt_on_timeout=True,
        kernel_name="python3", resources={"metadata": {"path": str(work)}},
    )
    manifest: dict = {"cells": [], "output_truncated": False, "seconds": None}
    started = time.monotonic()

    def write_manifest() -> None:
        manifest["output_truncated"] = output_budget[0] <= 0
        manifest["seconds"] = round(time.monotonic() - started, 3)
        temporary = args.out / "manifest.json.tmp"
        temporary.write_text(json.dumps(manifest))
        os.replace(temporary, args.out / "manifest.json")

    def listing() -> set[str]:
        return {path.stem for path in records.glob("*.npy")}

    # The recorder is defined by a first cell of the grader's own; cell indices shift by one.
    setup = nbformat.v4.new_code_cell(RECORDER.replace("__RECORDS__", repr(str(records))))
    notebook.cells.insert(0, setup)
    stopped = None
    with client.setup_kernel():
        client.execute_cell(setup, 0)
        for index, cell in enumerate(notebook.cells[1:], start=1):
            grade_id = cell.get("metadata", {}).get("grader", {}).get("grade_id")
            if cell.cell_type != "code":
                continue
            entry = {"index": index - 1, "grade_id": grade_id, "status": "not run", "error": None, "records": []}
            manifest["cells"].append(entry)
            if stopped:
                continue
            before = listing()
            try:
                client.execute_cell(cell, index)
                errors = [o for o in cell.outputs if o.get("output_type") == "error"]
                if errors:
                    entry["status"] = "error"
                    entry["error"] = f"{errors[-1].get('ename', '')}: {errors[-1].get('evalue', '')}"[:2000]
                    if errors[-1].get("ename") == "KeyboardInterrupt":
                        entry["status"] = "timeout"
                else:
                    entry["status"] = "ok"
            except CellTimeoutError:
                entry["status"], stopped = "timeout", "a cell did not finish and could not be interrupted"
            except DeadKernelError:
                entry["status"], stopped = "died", "the kernel died"
            except Exception as error:  # the kernel or its channels failed in another way
                entry["status"], stopped = "died", f"the kernel failed ({type(error).__name__})"
                import traceback
                traceback.print_exc()  # into the run's log, for the instructor
            entry["records"] = sorted(listing() - before)
            write_manifest()
    manifest["stopped"] = stopped
    write_manifest()
    # For the instructor's eyes only (the grader never copies it into feedback).
    notebook.cells.pop(0)
    (args.out / "executed.ipynb").write_text(nbformat.writes(notebook))
    return 0


if __name__ == "__main__":
    sys.exit(main())
