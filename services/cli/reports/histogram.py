"""A latency histogram as inline SVG: no script, no font or stylesheet to fetch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

__all__ = ["Bin", "bins_of", "histogram_svg"]

WIDTH = 640
HEIGHT = 220
_MARGIN_LEFT = 40
_MARGIN_BOTTOM = 40
_MARGIN_TOP = 20


@dataclass(frozen=True)
class Bin:
    low_ms: int
    high_ms: int
    """Exclusive, except for the last bin."""
    count: int


def bins_of(values: list[int], max_bins: int = 12) -> list[Bin]:
    """Equal-width bins from the smallest value to the largest, at most ``max_bins`` of them."""
    if not values:
        return []
    low, high = min(values), max(values)
    count = min(max_bins, len(set(values)))
    width = max(1, math.ceil((high - low + 1) / count))
    counts = [0] * count
    for value in values:
        counts[min(count - 1, (value - low) // width)] += 1
    return [Bin(low + i * width, low + (i + 1) * width, counts[i]) for i in range(count)]


def histogram_svg(values: list[int], title: str) -> str:
    """An ``<svg>`` element (its text escaped) of the values' histogram, axis in ms."""
    bins = bins_of(values)
    label = escape(title)
    if not bins:
        return (
            f'<svg class="histogram" role="img" aria-label="{label}" width="{WIDTH}" height="40">'
            f'<text x="0" y="24">no bot replies</text></svg>'
        )
    plot_w = WIDTH - _MARGIN_LEFT - 10
    plot_h = HEIGHT - _MARGIN_BOTTOM - _MARGIN_TOP
    top = max(b.count for b in bins)
    bar_w = plot_w / len(bins)
    parts = [
        f'<svg class="histogram" role="img" aria-label="{label}" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">',
        f"<title>{label}</title>",
        f'<line x1="{_MARGIN_LEFT}" y1="{_MARGIN_TOP + plot_h}" x2="{WIDTH - 10}" '
        f'y2="{_MARGIN_TOP + plot_h}" class="axis"/>',
    ]
    for i, b in enumerate(bins):
        h = plot_h * b.count / top
        x = _MARGIN_LEFT + i * bar_w
        y = _MARGIN_TOP + plot_h - h
        parts.append(
            f'<rect class="bar" x="{x + 1:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
            f'height="{h:.1f}"><title>{b.low_ms}-{b.high_ms} ms: {b.count}</title></rect>'
        )
        if b.count:
            parts.append(
                f'<text class="count" x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" '
                f'text-anchor="middle">{b.count}</text>'
            )
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{_MARGIN_TOP + plot_h + 14}" '
            f'text-anchor="middle">{b.low_ms}</text>'
        )
    parts.append(
        f'<text class="tick" x="{WIDTH - 10}" y="{_MARGIN_TOP + plot_h + 14}" '
        f'text-anchor="end">{bins[-1].high_ms}</text>'
        f'<text class="unit" x="{_MARGIN_LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">bot reply latency (ms), {len(values)} replies</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
