"""Small SVG charts for the evidence pack: no script, no external asset, no style attribute.

Presentation attributes only (fill, stroke, font-size), so the pages' strict CSP needs no
'unsafe-inline'. Every label is XML-escaped. Values come straight from the results files.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#718096")
FONT = 'font-family="sans-serif" font-size="11" fill="#2d3748"'


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


def grouped_bars(
    title: str,
    groups: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[str],
    *,
    unit: str = "",
    threshold: dict[str, float] | None = None,
    width: int = 640,
    height: int = 260,
) -> str:
    """Bars per group (e.g. endpoint) and series (e.g. p50/p95/p99); optional per-group threshold line."""
    left, right, top, bottom = 56, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, vs in groups for v in vs] + list((threshold or {}).values())
    vmax = _nice_max(max(values, default=0.0))
    body = _frame(title, vmax, left=left, right=right, top=top, plot_h=plot_h, width=width, unit=unit)
    n = max(1, len(groups))
    gw = plot_w / n
    bw = max(4.0, min(28.0, (gw - 16) / max(1, len(series))))
    for gi, (label, vs) in enumerate(groups):
        x0 = left + gi * gw + (gw - bw * len(vs)) / 2
        for si, v in enumerate(vs):
            h = plot_h * (v / vmax) if vmax else 0
            x = x0 + si * bw
            y = top + plot_h - h
            color = PALETTE[si % len(PALETTE)]
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(label)} {escape(series[si])}: {v:g}{escape(unit)}</title></rect>"
            )
        if threshold and label in threshold:
            ty = top + plot_h - plot_h * (threshold[label] / vmax)
            body.append(
                f'<line x1="{left + gi * gw + 4:.1f}" y1="{ty:.1f}" x2="{left + (gi + 1) * gw - 4:.1f}" '
                f'y2="{ty:.1f}" stroke="#e53e3e" stroke-width="2" stroke-dasharray="5,3">'
                f"<title>SLO {threshold[label]:g}{escape(unit)}</title></line>"
            )
        body.append(
            f'<text x="{left + gi * gw + gw / 2:.1f}" y="{height - bottom + 16}" {FONT} '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    body += _legend(series, PALETTE, spacing=90, height=height, left=left)
    if threshold:
        x = left + len(series) * 90
        body.append(
            f'<line x1="{x}" y1="{height - 9}" x2="{x + 16}" y2="{height - 9}" stroke="#e53e3e" '
            f'stroke-width="2" stroke-dasharray="5,3"/>'
        )
        body.append(f'<text x="{x + 20}" y="{height - 5}" {FONT}>SLO threshold</text>')
    return _svg(width, height, title, body)


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
