"""A timeline of the cloud user's requests through the faults, as an SVG picture (issue 13, pt 6).

One row per kind of request (create, show, extend, delete), one mark per request from its
start to its end, green when it succeeded and red when it failed; each fault a shaded band
with its name.  Written by hand as text: a few rectangles need no plotting library, and a
browser shows the file as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple
from xml.sax.saxutils import escape

from lab.cluster.workload import KINDS, Request

WIDTH, ROW, LEFT, TOP, BAND_LABEL = 1200, 28, 70, 40, 14
OK, FAILED, BAND = "#2e7d32", "#c62828", "#fff3cd"

Fault = Tuple[str, float, float]  # name, start, end (time.monotonic())


def svg(requests: Sequence[Request], faults: Sequence[Fault]) -> str:
    asked = [r for r in requests if r.kind in KINDS]
    if not asked:
        raise ValueError("no request to draw")
    t0 = min([r.sent for r in asked] + [start for _, start, _ in faults])
    t1 = max([r.done for r in asked] + [end for _, _, end in faults])
    scale = (WIDTH - LEFT - 20) / max(t1 - t0, 1.0)

    def x(t: float) -> float:
        return LEFT + (t - t0) * scale

    height = TOP + ROW * len(KINDS) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    for i, (name, start, end) in enumerate(faults):
        parts.append(
            f'<rect x="{x(start):.1f}" y="{TOP - 6}" width="{max(x(end) - x(start), 1):.1f}" '
            f'height="{ROW * len(KINDS) + 6}" fill="{BAND}" stroke="#e0c060"/>'
        )
        label_y = TOP - 10 - BAND_LABEL * (i % 2)  # alternate rows: neighbours' names do not overlap
        parts.append(f'<text x="{x(start) + 2:.1f}" y="{label_y}">{escape(name)}</text>')
    for row, kind in enumerate(KINDS):
        y = TOP + row * ROW
        parts.append(f'<text x="4" y="{y + ROW / 2 + 4:.1f}">{kind}</text>')
        for r in (r for r in asked if r.kind == kind):
            parts.append(
                f'<rect x="{x(r.sent):.1f}" y="{y + 4}" width="{max(x(r.done) - x(r.sent), 1.5):.1f}" '
                f'height="{ROW - 8}" fill="{OK if r.ok else FAILED}"><title>{kind} {escape(r.result)} '
                f"{r.done - r.sent:.2f} s</title></rect>"
            )
    axis_y = TOP + ROW * len(KINDS) + 16
    step = 10 if t1 - t0 < 300 else 60
    for second in range(0, int(t1 - t0) + 1, step):
        parts.append(f'<text x="{x(t0 + second):.1f}" y="{axis_y}">{second} s</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write(path: Path, requests: Sequence[Request], faults: Sequence[Fault]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg(requests, faults))
    return path
