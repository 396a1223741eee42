"""Heatmaps of a text explanation: self-contained HTML and a matplotlib
figure, on one color scale (blue negative, white 0, red positive)."""
from __future__ import annotations

import html

import numpy as np


def to_html(expl):
    """A self-contained HTML heatmap: each token on a background from blue
    (negative relevance) through white (zero) to red (positive), scaled
    by the largest absolute relevance."""
    scale = float(np.max(np.abs(expl.word_relevance))) or 1.0
    spans = []
    for tok, r in zip(expl.tokens, expl.word_relevance):
        spans.append(
            f'<span class="lrp-token" data-relevance="{float(r):.6g}" '
            f'title="{html.escape(tok)}: {float(r):+.4g}" style="background-color:'
            f'{_rgb(float(r) / scale)};color:{"#fff" if abs(r) > 0.6 * scale else "#000"};'
            f'padding:2px 3px;margin:1px;'
            f'border-radius:3px;display:inline-block">{html.escape(tok)}</span>')
    name = expl.target_name
    legend = (f'<div style="margin-top:6px;font-size:80%;color:#444">'
              f'<span style="background:linear-gradient(to right,{_rgb(-1)},'
              f'{_rgb(0)},{_rgb(1)});display:inline-block;width:120px;height:10px">'
              f'</span> {-scale:.3g} &hellip; 0 &hellip; {scale:+.3g}</div>')
    return (f'<div class="lrp-lstm-heatmap" style="font-family:sans-serif;'
            f'line-height:1.8">'
            f'<div style="font-size:85%;color:#444">{html.escape(expl.method.upper())} '
            f'relevance for class {expl.target} ({html.escape(name)}); predicted '
            f'{expl.predicted} ({html.escape(expl.class_names[expl.predicted])})</div>'
            f'<div>{" ".join(spans)}</div>{legend}</div>')


def plot(expl, width=80):
    """A matplotlib figure of the heatmap (matplotlib is imported here):
    the tokens in reading order on boxes colored by their relevance (blue
    negative, white 0, red positive), wrapped into rows of at most
    `width` characters, so the figure's width stays bounded and no token
    overlaps another; a token longer than a row is cut with an ellipsis."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    scale = float(np.max(np.abs(expl.word_relevance))) or 1.0
    boxes = _wrap([len(t) for t in expl.tokens], width)
    rows = boxes[-1][1] + 1 if boxes else 1
    # a monospaced font: one character is 0.6 em wide (a unit of x: 0.65 em,
    # for some room), a row 1.6 em high
    em = 9 / 72
    fig = plt.figure(figsize=(0.65 * em * (width + 2) + 0.4, 1.6 * em * rows + 0.7))
    ax = fig.add_axes((0.2 / fig.get_figwidth(), 0.15 / fig.get_figheight(),
                       1 - 0.4 / fig.get_figwidth(),
                       1 - 0.65 / fig.get_figheight()))
    for tok, r, (x, row, n) in zip(expl.tokens, expl.word_relevance, boxes):
        text = tok if len(tok) <= n else tok[:n - 1] + "\u2026"
        ax.add_patch(Rectangle((x, row + 0.1), n, 0.8, linewidth=0,
                               color=[c / 255 for c in _color(float(r) / scale)]))
        ax.text(x + n / 2, row + 0.5, text, ha="center", va="center", fontsize=9,
                family="monospace",
                color="#fff" if abs(r) > 0.6 * scale else "#000")
    ax.set_xlim(-1, width + 1)
    ax.set_ylim(rows, 0)
    ax.axis("off")
    ax.set_title(f"{expl.method.upper()}, class {expl.target} ({expl.target_name}); "
                 f"color scale \u00b1{scale:.3g}", fontsize=9)
    return fig


def _pyplot():
    """matplotlib.pyplot, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("the PNG heatmap and plots need matplotlib: "
                          "pip install 'lrp-lstm[plot]'") from None
    return plt


def _wrap(lengths, width):
    """Boxes (x, row, length) for tokens of the given lengths in rows of
    `width` characters, one character of space between tokens; a token
    longer than a row gets a row of its own, cut to the width."""
    boxes, x, row = [], 0, 0
    for n in lengths:
        n = min(max(n, 1), width)
        if x and x + n > width:
            x, row = 0, row + 1
        boxes.append((x, row, n))
        x += n + 1
    return boxes


def _color(s):
    """(r, g, b) in 0..255 of a relevance scaled to [-1, 1]: blue, white at
    0, red; the heatmaps' one color scale."""
    s = min(1.0, max(-1.0, s))
    v = round(255 * (1 - abs(s)))
    return (255, v, v) if s >= 0 else (v, v, 255)


def _rgb(s):
    """_color as CSS."""
    return "rgb({},{},{})".format(*_color(s))
