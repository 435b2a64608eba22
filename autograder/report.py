"""The class report: the score distribution at a glance, then the pass rate of every test, the
time grading took, and the submissions that need a look."""

from __future__ import annotations

import base64
import html
import io
import statistics
from pathlib import Path

from .config import AssignmentConfig
from .feedback import STYLE
from .notebooks import SourceNotebook
from .storage import atomic_write

SLOWEST_SHOWN = 5


def histogram_png(scores: list[float], max_score: float) -> bytes:
    """A bar per tenth of the points, each bar labelled with its number of students."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = [max_score * i / 10 for i in range(11)]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    counts, _, bars = ax.hist(scores, bins=edges, color="#0072B2", edgecolor="white")
    ax.bar_label(bars, labels=[f"{int(c)}" if c else "" for c in counts], padding=2)
    ax.set(xlabel=f"score (out of {max_score:g})", ylabel="students", xlim=(0, max_score),
           title=f"Scores of {len(scores)} submissions (mean {statistics.fmean(scores):.1f}, "
                 f"median {statistics.median(scores):g})")
    ax.set_xticks(edges)
    ax.set_ylim(0, max(counts.max() * 1.2, 1))
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def render_report(config: AssignmentConfig, source: SourceNotebook, results: list[dict]) -> str:
    escape = html.escape
    gradable = [r for r in results if not r["status"].startswith("ungradable")]
    scores = [r["score"] for r in results]
    image = base64.b64encode(histogram_png(scores, source.max_score)).decode() if scores else ""
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
    seconds = [r.get("seconds", 0.0) for r in gradable]
    timing = (f"<p>Time per graded submission (sandboxed runs and verdicts): mean {statistics.fmean(seconds):.1f} s, "
              f"median {statistics.median(seconds):.1f} s, longest {max(seconds):.1f} s.</p>" if seconds else "")
    slowest = "".join(
        f"<tr><td>{escape(r['student_id'])}</td><td>{r.get('seconds', 0.0):.1f} s</td><td>{escape(r['status'])}</td></tr>"
        for r in sorted(gradable, key=lambda r: -r.get("seconds", 0.0))[:SLOWEST_SHOWN])
    problems = [r for r in results if r["status"] != "graded"]
    problem_rows = "".join(
        f"<tr><td>{escape(r['student_id'])}</td><td>{r['score']:g}</td><td>{escape(r['status'])}</td></tr>"
        for r in sorted(problems, key=lambda r: (not r["status"].startswith("ungradable"), r["student_id"]))
    )
    mean = statistics.fmean(scores) if scores else 0.0
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Class report: {escape(config.name)}</title>
<style>{STYLE}</style></head><body>
<h1>Class report: {escape(config.name)}</h1>
{f'<img alt="histogram of the scores" style="max-width:100%" src="data:image/png;base64,{image}">' if image else ''}
<p>{len(results)} submissions, {len(gradable)} graded, {len(results) - len(gradable)} ungradable.
Mean score {mean:.1f} / {source.max_score:g}.</p>
<h2>Pass rate per test</h2>
<table><thead><tr><th>test</th><th>points</th><th>passed</th><th>rate</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<h2>Time</h2>
{timing}
<table><thead><tr><th>slowest submissions</th><th>time</th><th>status</th></tr></thead>
<tbody>{slowest or '<tr><td colspan="3">none</td></tr>'}</tbody></table>
<h2>Submissions that need a look</h2>
<p>Ungradable submissions first, then graded ones whose run had something unusual.</p>
<table><thead><tr><th>student</th><th>score</th><th>status</th></tr></thead>
<tbody>{problem_rows or '<tr><td colspan="3">none</td></tr>'}</tbody></table>
</body></html>
"""


def write_report(path: Path, config: AssignmentConfig, source: SourceNotebook, results: list[dict]) -> None:
    atomic_write(path, render_report(config, source, results))
