"""Charts drawn on the server as SVG: no script library, no CDN, nothing the page's security policy
must allow. Presentation attributes only (the policy forbids inline styles); every label escaped.
Chinese labels are set in the system's Noto Sans CJK (fonts-noto-cjk, installed by the Makefile).
"""
from __future__ import annotations

from markupsafe import Markup, escape

from .labels import CATEGORY_COLOURS

FONT = 'font-family="Noto Sans CJK SC, sans-serif"'
BAR = "#1f3a5f"


def bars(title: str, items: dict[str, int], shown: dict[str, str] | None = None, width: int = 400) -> Markup:
    """Horizontal bars, one per item, largest first as given; ``shown`` maps keys to the labels to print."""
    shown = shown or {}
    rows = list(items.items())[:20]
    top = max((v for _, v in rows), default=0) or 1
    label_w, row_h = 130, 24
    height = 30 + row_h * max(1, len(rows))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<text x="0" y="16" font-size="14" font-weight="bold" {FONT}>{escape(title)}</text>']
    for n, (key, value) in enumerate(rows):
        y = 30 + n * row_h
        length = round((width - label_w - 60) * value / top)
        colour = CATEGORY_COLOURS.get(key, BAR)
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" font-size="12" text-anchor="end" {FONT}>{escape(shown.get(key, key)[:16])}</text>'
                     f'<rect x="{label_w}" y="{y + 3}" width="{max(length, 1)}" height="{row_h - 8}" fill="{colour}"/>'
                     f'<text x="{label_w + length + 6}" y="{y + 15}" font-size="12" {FONT}>{value}</text>')
    if not rows:
        parts.append(f'<text x="0" y="46" font-size="12" fill="#52606d" {FONT}>—</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def trend(title: str, series: dict[str, dict[str, int]], shown: dict[str, str] | None = None, width: int = 900) -> Markup:
    """Stacked columns per period (day, week or month), one colour per category, with a legend."""
    shown = shown or {}
    periods = list(series)[-60:]
    categories = sorted({c for counts in series.values() for c in counts})
    top = max((sum(series[p].values()) for p in periods), default=0) or 1
    left, bottom, plot_h = 40, 200, 150
    step = (width - left - 10) / max(1, len(periods))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {bottom + 60}" width="100%" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<text x="0" y="16" font-size="14" font-weight="bold" {FONT}>{escape(title)}</text>',
             f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#8892a0"/>',
             f'<text x="{left - 4}" y="{bottom - plot_h + 4}" font-size="11" text-anchor="end" {FONT}>{top}</text>']
    for n, period in enumerate(periods):
        x, base = left + n * step, bottom
        for category in categories:
            value = series[period].get(category, 0)
            if value:
                h = plot_h * value / top
                base -= h
                parts.append(f'<rect x="{x + 1:.1f}" y="{base:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                             f'fill="{CATEGORY_COLOURS.get(category, BAR)}"><title>{escape(period)} · {escape(shown.get(category, category))}: '
                             f'{value}</title></rect>')
        if len(periods) <= 15 or n % max(1, len(periods) // 10) == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{bottom + 14}" font-size="10" text-anchor="middle" {FONT}>{escape(period[-5:])}</text>')
    for n, category in enumerate(categories):
        x = left + n * 170
        parts.append(f'<rect x="{x}" y="{bottom + 30}" width="12" height="12" fill="{CATEGORY_COLOURS.get(category, BAR)}"/>'
                     f'<text x="{x + 16}" y="{bottom + 41}" font-size="12" {FONT}>{escape(shown.get(category, category))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
