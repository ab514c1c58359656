"""The performance table: from the runner's JSON to Markdown, and into the README between two markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.machine import header

START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def _seconds(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _figures(row: dict[str, Any]) -> str:
    parts = []
    for key, value in row.get("figures", {}).items():
        parts.append(f"{key.replace('_', ' ')} {value:.2g}" if isinstance(value, float) else f"{key} {value}")
    for key, value in row.get("info", {}).items():
        if key in ("fast_path",):
            parts.append(f"fast path {value}")
    return "; ".join(parts)


def table(results: dict[str, Any]) -> str:
    """Markdown: one line per row, ours against the peer (wall and CPU medians, ratio = peer / ours)."""
    lines = [
        f"*{header(results['machine'])}. `python -m benchmarks run{' --quick' if results['quick'] else ''}`: "
        "medians over repeats with ours and the peer alternating; ratio = peer time / our time (> 1: ours is "
        "faster); peak = memory the call allocates (start-up rows: the fresh interpreter's peak).*",
        "",
        "| benchmark | zoo s (CPU s) | peer | peer s (CPU s) | ratio wall (CPU) | peak MB zoo / peer | extra | agreement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        cases = row["cases"]
        names = list(cases)
        ours, peer = cases[names[0]], cases[names[1]]
        extra = [f"{n}: {_seconds(cases[n]['wall_s'])} s ({row['ratios'][n]:.2f}x)" for n in names[2:]]
        peaks = [c.get("peak_extra_mb") for c in (ours, peer)]
        peak = " / ".join("-" if p is None else f"{p:.0f}" for p in peaks)
        lines.append(
            f"| {row['title']} | {_seconds(ours['wall_s'])} ({_seconds(ours['cpu_s'])}) | {names[1]} "
            f"| {_seconds(peer['wall_s'])} ({_seconds(peer['cpu_s'])}) "
            f"| {row['ratios'][names[0]]:.2f} ({row['cpu_ratio']:.2f}) | {peak} | {'; '.join(extra) or '-'} "
            f"| {_figures(row) or '-'} |"
        )
    return "\n".join(lines)


def write_readme(results: dict[str, Any], readme: Path) -> None:
    """Replace what stands between the markers (append a section with them where there are none)."""
    text = readme.read_text(encoding="utf-8")
    block = f"{START}\n{table(results)}\n{END}"
    if START in text and END in text:
        before, _, rest = text.partition(START)
        _, _, after = rest.partition(END)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n## Performance\n\n" + block + "\n"
    readme.write_text(text, encoding="utf-8")
