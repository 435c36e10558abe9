"""Small SVG charts for the evidence pack: no script, no external asset, no style attribute.

Presentation attributes only (fill, stroke, font-size), so the pages' strict CSP needs no
'unsafe-inline'. Every label is XML-escaped. Values come straight from the results files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096")
FONT = 'font-family="sans-serif" font-size="11" fill="#2d3748"'
SMALL = 'font-family="sans-serif" font-size="9" fill="#2d3748"'


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value)))
    for step in (0.1, 0.2, 0.25, 0.5, 1.0):
        if value <= magnitude * step:
            return magnitude * step
    return float(magnitude)


def _frame(title: str, vmax: float, *, left: int, right: int, top: int, plot_h: int, width: int,
           unit: str = "") -> list[str]:  # fmt: skip
    """The title and five horizontal grid lines labelled 0 .. ``vmax``: what every bar chart starts with."""
    body = [f'<text x="{left}" y="16" {FONT} font-weight="bold">{escape(title)}</text>']
    for i in range(5):
        v = vmax * i / 4
        y = top + plot_h - plot_h * i / 4
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        body.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" {FONT} text-anchor="end">{v:g}{escape(unit)}</text>'
        )
    return body


def _legend(
    series: Sequence[str], colors: Sequence[str], *, left: int, spacing: int, height: int
) -> list[str]:
    """A colour swatch and the name of each series along the bottom edge, ``spacing`` apart."""
    body = []
    for si, name in enumerate(series):
        x = left + si * spacing
        body.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{colors[si % len(colors)]}"/>'
        )
        body.append(f'<text x="{x + 14}" y="{height - 5}" {FONT}>{escape(name)}</text>')
    return body


def stacked_bins(
    title: str,
    bins: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[str],
    *,
    colors: Sequence[str] = ("#38a169", "#e53e3e", "#718096"),
    width: int = 640,
    height: int = 220,
) -> str:
    """Stacked bars per bin (e.g. accepted vs 429 per second)."""
    left, right, top, bottom = 44, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    vmax = _nice_max(max((sum(vs) for _, vs in bins), default=0.0))
    body = _frame(title, vmax, left=left, right=right, top=top, plot_h=plot_h, width=width)
    n = max(1, len(bins))
    bw = plot_w / n
    label_every = max(1, n // 12)
    for bi, (label, vs) in enumerate(bins):
        y: float = top + plot_h
        for si, v in enumerate(vs):
            h = plot_h * (v / vmax) if vmax else 0
            y -= h
            x, w = left + bi * bw + 1, max(1.0, bw - 2)
            tip = f"{escape(label)} {escape(series[si])}: {v:g}"
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                f'fill="{colors[si % len(colors)]}"><title>{tip}</title></rect>'
            )
        if bi % label_every == 0:
            body.append(
                f'<text x="{left + bi * bw + bw / 2:.1f}" y="{height - bottom + 16}" {FONT} '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    body += _legend(series, colors, spacing=110, height=height, left=left)
    return _svg(width, height, title, body)


def horizontal_bars(
    title: str, rows: Sequence[tuple[str, float]], *, unit: str = "s", width: int = 640
) -> str:
    """One bar per row (e.g. drill phases and their durations)."""
    left, right, top, row_h = 150, 70, 28, 22
    height = top + row_h * max(1, len(rows)) + 12
    vmax = _nice_max(max((v for _, v in rows), default=0.0))
    plot_w = width - left - right
    body = [f'<text x="8" y="16" {FONT} font-weight="bold">{escape(title)}</text>']
    for i, (label, v) in enumerate(rows):
        y = top + i * row_h
        w = plot_w * (v / vmax) if vmax else 0
        body.append(f'<text x="{left - 8}" y="{y + 14}" {FONT} text-anchor="end">{escape(label)}</text>')
        bar = f'x="{left}" y="{y + 3}" width="{max(1.0, w):.1f}" height="{row_h - 6}"'
        body.append(
            f'<rect {bar} fill="{PALETTE[0]}"><title>{escape(label)}: {v:g} {escape(unit)}</title></rect>'
        )
        body.append(f'<text x="{left + w + 6:.1f}" y="{y + 14}" {FONT}>{v:.3g} {escape(unit)}</text>')
    return _svg(width, height, title, body)


# -- latency as reviewers read it: a percentile spectrum and a time series ---------------------------

# the percentiles a spectrum is drawn through: dense enough for a smooth line on the "nines" axis
SPECTRUM_PERCENTILES: tuple[float, ...] = tuple(
    round(100 * (1 - 10 ** (-(0.30103 + i * (4 - 0.30103) / 48))), 4) for i in range(49)
)
NINES_TICKS = ((50.0, "50 %"), (90.0, "90 %"), (99.0, "99 %"), (99.9, "99.9 %"), (99.99, "99.99 %"))


def nines(percentile: float) -> float:
    """The log "nines" coordinate of a percentile: 50 % -> 0.30, 90 % -> 1, 99 % -> 2, 99.99 % -> 4."""
    return -math.log10(max(1e-9, 1 - percentile / 100))


def _line(points: Sequence[tuple[float, float]], color: str, *, dash: str = "", tip: str = "") -> str:
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return (
        f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dashed}>{title}</polyline>'
    )


def percentile_spectrum(
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    threshold: tuple[float, float] | None = None,
    width: int = 640,
    height: int = 260,
) -> str:
    """Latency (ms, linear) against percentile on a log "nines" axis from 50 % to 99.99 %, one line per
    series of (percentile, ms) points -- this run, and a baseline when given (dashed). ``threshold``
    (percentile, ms) draws the SLO: a dashed red line at its ms and a mark at its percentile."""
    left, right, top, bottom = 56, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    lo, hi = nines(50.0), nines(99.99)
    values = [ms for _, pts in series for _, ms in pts] + ([threshold[1]] if threshold else [])
    vmax = _nice_max(max(values, default=0.0))
    body = _frame(title, vmax, left=left, right=right, top=top, plot_h=plot_h, width=width, unit=" ms")

    def x_of(p: float) -> float:
        return left + plot_w * (min(hi, max(lo, nines(p))) - lo) / (hi - lo)

    def y_of(ms: float) -> float:
        return top + plot_h - plot_h * (ms / vmax)

    for p, label in NINES_TICKS:
        x = x_of(p)
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#e2e8f0"/>')
        body.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" {FONT} text-anchor="middle">{label}</text>')
    if threshold:
        p, ms = threshold
        y = y_of(ms)
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e53e3e" '
            f'stroke-width="2" stroke-dasharray="5,3"><title>SLO: p{p:g} &lt;= {ms:g} ms</title></line>'
        )
        body.append(f'<circle cx="{x_of(p):.1f}" cy="{y:.1f}" r="4" fill="#e53e3e"/>')
    colors = []
    for si, (name, pts) in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        colors.append(color)
        if pts:
            xy = [(x_of(p), y_of(ms)) for p, ms in pts]
            tip = ", ".join(f"p{p:g} {ms:g} ms" for p, ms in pts if p in (50.0, 90.0, 99.0, 99.9, 99.99))
            body.append(_line(xy, color, dash="6,3" if si else "", tip=f"{name}: {tip}"))
    body += _legend([n for n, _ in series], colors, spacing=150, height=height, left=left)
    return _svg(width, height, title, body)


def time_series(
    title: str,
    t: Sequence[float],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    shaded: Sequence[tuple[float, float, str]] = (),
    unit: str = " ms",
    width: int = 640,
    height: int = 240,
) -> str:
    """Lines over the run's seconds (e.g. p50 and p99 per second; a second without a value breaks the
    line), with ``shaded`` spans (start, end, label) -- the fault windows."""
    left, right, top, bottom = 56, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(v) for _, vs in series for v in vs if v is not None]
    vmax = _nice_max(max(values, default=0.0))
    body = _frame(title, vmax, left=left, right=right, top=top, plot_h=plot_h, width=width, unit=unit)
    t0, t1 = (min(t), max(t)) if t else (0.0, 1.0)
    span = max(1.0, t1 - t0)

    def x_of(sec: float) -> float:
        return left + plot_w * (min(t1, max(t0, sec)) - t0) / span

    for start, end, label in shaded:
        x0, x1 = x_of(start), x_of(end)
        body.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(1.0, x1 - x0):.1f}" height="{plot_h}" fill="#fed7d7">'
            f"<title>{escape(label)}: {start:g} s .. {end:g} s</title></rect>"
        )
        body.append(f'<text x="{x0 + 2:.1f}" y="{top + 11}" {SMALL}>{escape(label)}</text>')
    label_every = max(1, len(t) // 10)
    for i, sec in enumerate(t):
        if i % label_every == 0:
            x, y = x_of(sec), top + plot_h + 16
            body.append(f'<text x="{x:.1f}" y="{y}" {FONT} text-anchor="middle">{sec:g} s</text>')
    colors = []
    for si, (name, vs) in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        colors.append(color)
        run: list[tuple[float, float]] = []
        points: list[tuple[float, float | None]] = [*zip(t, vs, strict=False), (t1, None)]
        for at, v in points:
            if v is None:  # a gap (or the end): draw what was collected
                if len(run) == 1:
                    body.append(f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2" fill="{color}"/>')
                elif run:
                    body.append(_line(run, color, tip=name))
                run = []
                continue
            run.append((x_of(float(at)), top + plot_h - plot_h * (float(v) / vmax)))
    body += _legend([n for n, _ in series], colors, spacing=110, height=height, left=left)
    return _svg(width, height, title, body)
