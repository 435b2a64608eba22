"""The class report: score distribution, pass rate of every test, and ungradable submissions."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from .config import AssignmentConfig
from .feedback import STYLE
from .notebooks import SourceNotebook


def _histogram_png(scores: list[float], max_score: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(scores, bins=[max_score * i / 10 for i in range(11)], color="#0072B2", edgecolor="white")
    ax.set(xlabel=f"score (out of {max_score:g})", ylabel="students", title="Score distribution",
           xlim=(0, max_score))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def render_report(config: AssignmentConfig, source: SourceNotebook, results: list[dict]) -> str:
    escape = html.escape
    gradable = [r for r in results if not r["status"].startswith("ungradable")]
    scores = [r["score"] for r in results]
    mean = sum(scores) / len(scores) if scores else 0.0
    rows = []
    for test in source.tests:
        passed = sum(1 for r in results for t in r["tests"] if t["grade_id"] == test.grade_id and t["passed"])
        rate = passed / len(results) if results else 0.0
        rows.append(
            f"<tr><td>{escape(test.description)}<br><code>{escape(test.grade_id)}</code></td>"
            f"<td>{test.points:g}</td><td>{passed} / {len(results)}</td>"
            f"<td><div style=\"background:#0072B2;height:1em;width:{rate * 100:.0f}%\"></div>"
            f"{rate:.0%}</td></tr>"
        )
    problems = [r for r in results if r["status"] != "graded"]
    problem_rows = "".join(
        f"<tr><td>{escape(r['student_id'])}</td><td>{r['score']:g}</td><td>{escape(r['status'])}</td></tr>"
        for r in sorted(problems, key=lambda r: (not r["status"].startswith("ungradable"), r["student_id"]))
    )
    image = _histogram_png(scores, source.max_score) if scores else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Class report: {escape(config.name)}</title>
<style>{STYLE}</style></head><body>
<h1>Class report: {escape(config.name)}</h1>
<p>{len(results)} submissions, {len(gradable)} graded, {len(results) - len(gradable)} ungradable.
Mean score {mean:.1f} / {source.max_score:g}.</p>
{f'<img alt="histogram of scores" src="data:image/png;base64,{image}">' if image else ''}
<h2>Pass rate per test</h2>
<table><thead><tr><th>test</th><th>points</th><th>passed</th><th>rate</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<h2>Submissions that need a look</h2>
<p>Ungradable submissions first, then graded ones whose run had something unusual.</p>
<table><thead><tr><th>student</th><th>score</th><th>status</th></tr></thead>
<tbody>{problem_rows or '<tr><td colspan="3">none</td></tr>'}</tbody></table>
</body></html>
"""


def write_report(path: Path, config: AssignmentConfig, source: SourceNotebook, results: list[dict]) -> None:
    path.write_text(render_report(config, source, results))
