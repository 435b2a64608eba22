"""Per-student feedback: each test's name, points and verdict, and the visible test's message.

Built only from the verdicts, never from the executed notebook: nothing the student's code
printed, and nothing of the hidden tests or the reference values, can reach this page.
"""

from __future__ import annotations

import html
from pathlib import Path

from .config import AssignmentConfig
from .storage import atomic_write

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
table { border-collapse: collapse; width: 100%; } th, td { border-bottom: 1px solid #ddd;
padding: .4em .6em; text-align: left; vertical-align: top; } .pass { color: #176d2c; }
.fail { color: #b3261e; } .score { font-size: 1.4em; }
"""


def render_feedback(config: AssignmentConfig, result: dict) -> str:
    escape = html.escape
    rows = []
    for test in result["tests"]:
        verdict = "passed" if test["passed"] else "failed"
        rows.append(
            f"<tr><td>{escape(test['description'])}<br><code>{escape(test['grade_id'])}</code></td>"
            f"<td>{test['points']:g} / {test['max_points']:g}</td>"
            f"<td class=\"{'pass' if test['passed'] else 'fail'}\">{verdict}</td>"
            f"<td>{escape(test['message'] if not test['passed'] else '')}</td></tr>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Feedback: {escape(config.name)}, {escape(result['student_id'])}</title>
<style>{STYLE}</style></head><body>
<h1>Feedback on {escape(config.notebook)}</h1>
<p>Student: <strong>{escape(result['student_id'])}</strong> &middot; assignment {escape(config.name)}</p>
<p class="score">Score: <strong>{result['score']:g} / {result['max_score']:g}</strong></p>
<p>Status: {escape(result['status'])}</p>
<table><thead><tr><th>test</th><th>points</th><th>verdict</th><th>message</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<p>Each test cell is worth its points when all of its checks pass. Visible tests are the ones
in your notebook; hidden tests check your functions on other inputs and are not shown.</p>
</body></html>
"""


def write_feedback(folder: Path, config: AssignmentConfig, result: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{Path(config.notebook).stem}.html"
    page = render_feedback(config, result)
    try:
        if path.read_text(encoding="utf-8") == page:  # a resumed run: nothing to rewrite
            return path
    except (OSError, ValueError):
        pass
    atomic_write(path, page)
    return path
