"""Inline SVG plots for the HTML report: no plotting library, nothing fetched by the page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["bars_svg", "confusion_svg", "reliability_svg"]

_FONT = 'font-family="system-ui, sans-serif" font-size="11"'
_PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6")


def _text(x: float, y: float, body: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {_FONT} {extra}>{escape(body)}</text>'


def confusion_svg(labels: Sequence[str], matrix: Sequence[Sequence[int]], cell: int = 44) -> str:
    """Rows are the true label, columns the prediction; colour is the row share, the number the count."""
    pad_left, pad_top = 110, 90
    n = len(labels)
    width, height = pad_left + n * cell + 10, pad_top + n * cell + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="confusion matrix">']
    parts.append(_text(pad_left + n * cell / 2, 14, "predicted →", extra='font-weight="bold"'))
    parts.append(_text(12, pad_top - 8, "true ↓", anchor="start", extra='font-weight="bold"'))
    for j, label in enumerate(labels):
        x = pad_left + j * cell + cell / 2
        parts.append(f'<text transform="translate({x:.1f},{pad_top - 6}) rotate(-45)" {_FONT}>{escape(label[:18])}</text>')
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        y = pad_top + i * cell
        parts.append(_text(pad_left - 6, y + cell / 2 + 4, labels[i][:18], anchor="end"))
        for j, count in enumerate(row):
            share = count / total
            x = pad_left + j * cell
            colour = f"rgba(37,99,235,{0.08 + 0.85 * share:.3f})" if count else "#f8fafc"
            parts.append(f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{colour}">'
                         f'<title>{escape(labels[i])} → {escape(labels[j])}: {count}</title></rect>')
            ink = "#fff" if share > 0.55 else "#111"
            parts.append(_text(x + cell / 2 - 1, y + cell / 2 + 4, str(count), extra=f'fill="{ink}"'))
    parts.append("</svg>")
    return "".join(parts)


def reliability_svg(series: Mapping[str, Sequence[Mapping[str, Any]]], size: int = 300) -> str:
    """Observed positive rate against mean predicted probability per bin; the diagonal is perfect
    calibration, and each point's area grows with the number of examples in its bin."""
    pad = 52
    full = size + 2 * pad
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{full + 120}" height="{full}" role="img" '
             f'aria-label="reliability plot">']

    def px(v: float) -> float:
        return pad + v * size

    def py(v: float) -> float:
        return pad + (1 - v) * size

    parts.append(f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="#fff" stroke="#94a3b8"/>')
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(_text(px(tick), pad + size + 14, f"{tick:.2f}"))
        parts.append(_text(pad - 6, py(tick) + 4, f"{tick:.2f}", anchor="end"))
    parts.append(f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#94a3b8" stroke-dasharray="4 3"/>')
    parts.append(_text(pad + size / 2, full - 4, "mean predicted probability"))
    parts.append(f'<text transform="translate(12,{pad + size / 2}) rotate(-90)" text-anchor="middle" {_FONT}>'
                 "observed positive rate</text>")
    total = max(1, max((sum(b["n"] for b in bins) for bins in series.values()), default=1))
    for k, (name, bins) in enumerate(series.items()):
        colour = _PALETTE[k % len(_PALETTE)]
        points = [(px(b["mean_p"]), py(b["frac_pos"]), b) for b in bins if b["n"]]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for x, y, b in points:
            radius = 2.5 + 9 * (b["n"] / total) ** 0.5
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="{colour}" fill-opacity="0.6">'
                         f'<title>{escape(name)} {b["lo"]:.1f}–{b["hi"]:.1f}: n={b["n"]}, '
                         f'predicted {b["mean_p"]:.2f}, observed {b["frac_pos"]:.2f}</title></circle>')
        parts.append(f'<rect x="{full + 4}" y="{pad + 16 * k}" width="10" height="10" fill="{colour}"/>')
        parts.append(_text(full + 18, pad + 16 * k + 9, name, anchor="start"))
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(values: Mapping[str, Mapping[str, float]], *, title: str, width: int = 640) -> str:
    """Horizontal grouped bars in [0, 1]: one group per category, one bar per system."""
    systems = list(values)
    categories: list[str] = []
    for per in values.values():
        categories.extend(c for c in per if c not in categories)
    bar, gap, pad_left = 12, 8, 150
    group = bar * len(systems) + gap
    height = 40 + group * len(categories) + 16 * len(systems)
    plot = width - pad_left - 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}">', _text(pad_left, 16, title, anchor="start", extra='font-weight="bold"')]
    for tick in (0.0, 0.5, 1.0):
        x = pad_left + tick * plot
        parts.append(f'<line x1="{x:.1f}" y1="26" x2="{x:.1f}" y2="{28 + group * len(categories)}" stroke="#e2e8f0"/>')
        parts.append(_text(x, 24, f"{tick:.1f}"))
    for i, category in enumerate(categories):
        y0 = 30 + i * group
        parts.append(_text(pad_left - 6, y0 + group / 2, category[:24], anchor="end"))
        for k, system in enumerate(systems):
            value = values[system].get(category)
            if value is None:
                continue
            colour = _PALETTE[k % len(_PALETTE)]
            w = max(0.0, min(1.0, value)) * plot
            parts.append(f'<rect x="{pad_left}" y="{y0 + k * bar}" width="{w:.1f}" height="{bar - 2}" fill="{colour}">'
                         f'<title>{escape(system)} · {escape(category)}: {value:.3f}</title></rect>')
            parts.append(_text(pad_left + w + 4, y0 + k * bar + bar - 3, f"{value:.2f}", anchor="start"))
    legend_y = 36 + group * len(categories)
    for k, system in enumerate(systems):
        parts.append(f'<rect x="{pad_left}" y="{legend_y + 16 * k}" width="10" height="10" '
                     f'fill="{_PALETTE[k % len(_PALETTE)]}"/>')
        parts.append(_text(pad_left + 14, legend_y + 16 * k + 9, system, anchor="start"))
    parts.append("</svg>")
    return "".join(parts)
