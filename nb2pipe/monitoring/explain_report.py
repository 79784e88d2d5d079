"""An :class:`~nb2pipe.monitoring.explain.Explanation` as one self-contained HTML page (inline
SVG and PNG data URIs, no external assets): attribution bars for table rows, highlighted
tokens for texts, heatmaps and anchor segments over images, anchors as readable rules."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable
from dataclasses import replace
from html import escape
from typing import Any

from nb2pipe.errors import Nb2PipeError
from nb2pipe.monitoring.explain import AnchorRow, Explanation, IGRow
from nb2pipe.monitoring.explain_torch_inputs import on_host

#: attributions that push the score up (toward the explained class) and down
UP, DOWN = (192, 57, 43), (36, 113, 163)
#: bars drawn per row; the rest are summed in one line
MAX_BARS = 12
#: small images are enlarged (by whole pixels) to at least this many pixels on their longer side
MIN_PIXELS = 168
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;max-width:980px}
h1{font-size:1.35em}h2{font-size:1.05em;margin:0 0 6px}
.row{border:1px solid #ddd;border-radius:6px;padding:12px 16px;margin:14px 0}
.rule{font-size:1.05em;margin:6px 0}.rule b{background:#fdf2d0;padding:1px 4px;border-radius:3px}
.note{color:#666;font-size:.9em}.tokens{line-height:2;font-size:1.05em}
.tokens span{padding:2px 3px;border-radius:3px}.anchor-word{background:#f9d56e;font-weight:600}
.pictures{display:flex;gap:18px;align-items:flex-end}.pictures figure{margin:0;text-align:center}
img{image-rendering:pixelated}table.metrics td{padding:2px 10px 2px 0}
"""


def explanation_html(explanation: Explanation, rows: Any, *, title: str) -> str:
    values = _row_values(explanation, on_host(rows))  # a tensor's rows, possibly on a GPU
    if len(values) != len(explanation.rows):
        raise Nb2PipeError(f"{len(values)} rows given for an explanation of {len(explanation.rows)} rows")
    sections = [
        _section(explanation, i, record, value)
        for i, (record, value) in enumerate(zip(explanation.rows, values, strict=True))
    ]
    metrics = "".join(f"<tr><td>{escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in explanation.metrics().items())
    how = {
        "anchor": "An anchor is a condition under which the model keeps its prediction: precision is how often it "
        "does while the anchor holds, coverage how much of the data the anchor holds for.",
        "ig": "Integrated Gradients splits the score of the explained class between the inputs: red parts raise it, "
        "blue parts lower it, relative to the baseline; they add up to the score minus the baseline's score.",
    }[explanation.method]
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f'<p class="note">{escape(how)}</p><table class="metrics">{metrics}</table>'
        + "".join(sections)
        + "</body></html>"
    )


def _row_values(explanation: Explanation, rows: Any) -> list[Any]:
    import numpy
    import pandas

    if explanation.modality == "tabular":
        names = explanation.feature_names
        if isinstance(rows, pandas.DataFrame):
            columns = [str(column) for column in rows.columns]
            names = names or tuple(columns)
            if all(name in columns for name in names):
                rows = rows.iloc[:, [columns.index(name) for name in names]]
            return [dict(zip(names, row, strict=False)) for row in rows.itertuples(index=False)]
        table = numpy.asarray(rows, dtype=object)
        table = table[numpy.newaxis] if table.ndim == 1 else table
        names = names or tuple(f"f{i}" for i in range(table.shape[1]))
        return [dict(zip(names, row, strict=False)) for row in table]
    if explanation.modality == "text":
        if isinstance(rows, str):
            return [rows]
        if isinstance(rows, pandas.DataFrame):
            rows = rows.iloc[:, 0]
        return [str(text) for text in numpy.asarray(rows, dtype=object).ravel()]
    images = numpy.asarray(rows)
    if explanation.channels_first:
        # N,C,H,W (one image: C,H,W) -> channels last, as pictures are drawn
        return list(numpy.moveaxis(images[numpy.newaxis] if images.ndim == 3 else images, 1, -1))
    return list(images[numpy.newaxis] if images.ndim == 2 else images)


def _section(explanation: Explanation, index: int, record: Any, value: Any) -> str:
    head = f"<h2>Row {index}: prediction <code>{escape(str(record.prediction))}</code></h2>"
    bodies: dict[str, Callable[[Any, Any], str]]
    if isinstance(record, AnchorRow):
        bodies = {"tabular": _tabular_anchor, "text": _text_anchor, "image": _image_anchor}
    else:
        bodies = {"tabular": _tabular_ig, "text": _text_ig, "image": _image_ig}
    body = bodies[explanation.modality]
    if explanation.channels_first and isinstance(record, IGRow):
        record = replace(record, attributions=attribution_map(record.attributions, channels_first=True))
    return f'<section class="row">{head}{body(record, value)}</section>'


# anchors


def _meter(record: AnchorRow) -> str:
    bars = []
    for offset, (label, share) in enumerate((("precision", record.precision), ("coverage", record.coverage))):
        y = 4 + offset * 22
        width = max(0.0, min(1.0, float(share))) * 220
        bars.append(
            f'<text x="0" y="{y + 12}" font-size="12">{label}</text>'
            f'<rect x="80" y="{y}" width="220" height="15" fill="#eee"/>'
            f'<rect x="80" y="{y}" width="{width:.1f}" height="15" fill="#7a9e3d"/>'
            f'<text x="306" y="{y + 12}" font-size="12">{share:.1%}</text>'
        )
    return _svg(360, 50, "".join(bars), "anchor precision and coverage")


def _rule(parts: list[str], prediction: Any) -> str:
    condition = " AND ".join(f"<b>{escape(part)}</b>" for part in parts) or "<b>(anything)</b>"
    return f'<p class="rule">IF {condition} THEN the model predicts <code>{escape(str(prediction))}</code></p>'


def _tabular_anchor(record: AnchorRow, values: dict[str, Any]) -> str:
    lines = [
        _number_line(c.feature, c.low, c.high, values.get(c.feature)) for c in record.conditions if c.equals is None
    ]
    return _rule(list(record.anchor), record.prediction) + _meter(record) + "".join(lines)


def _number_line(feature: str, low: float | None, high: float | None, value: Any) -> str:
    """The anchor's interval on the feature's axis, and where this row's value lies."""
    points = [float(p) for p in (low, high) if p is not None]
    number = float(value) if isinstance(value, int | float) or hasattr(value, "dtype") else None
    points += [number] if number is not None else []
    first, last = min(points), max(points)
    pad = (last - first) * 0.3 or abs(first) * 0.2 or 1.0
    start, end = first - pad, last + pad
    left, width = 250, 330

    def at(x: float) -> float:
        return left + (x - start) / (end - start) * width

    x0 = at(low) if low is not None else left
    x1 = at(high) if high is not None else left + width
    parts = [
        f'<text x="{left - 8}" y="17" font-size="12" text-anchor="end">{escape(feature)}</text>',
        f'<line x1="{left}" y1="12" x2="{left + width}" y2="12" stroke="#bbb"/>',
        f'<rect x="{x0:.1f}" y="6" width="{max(x1 - x0, 1):.1f}" height="12" fill="#f9d56e"/>',
    ]
    for bound in (low, high):
        if bound is not None:
            parts.append(f'<text x="{at(bound):.1f}" y="32" font-size="10" text-anchor="middle">{bound:.4g}</text>')
    if number is not None:
        parts.append(f'<circle cx="{at(number):.1f}" cy="12" r="4.5" fill="#222"><title>{number:.6g}</title></circle>')
    return _svg(left + width + 30, 36, "".join(parts), f"anchor interval of {feature}")


def _text_anchor(record: AnchorRow, text: str) -> str:
    spans, cursor = [], 0
    for position, word in sorted(zip(record.positions, record.anchor, strict=False)):
        if position < cursor or text[position : position + len(str(word))] != str(word):
            continue
        spans.append(escape(text[cursor:position]))
        spans.append(f'<span class="anchor-word">{escape(str(word))}</span>')
        cursor = position + len(str(word))
    spans.append(escape(text[cursor:]))
    words = [str(word) for word in record.anchor]
    return _rule([f"the text contains {w!r}" for w in words], record.prediction) + (
        f'<p class="tokens">{"".join(spans)}</p>' + _meter(record)
    )


def _image_anchor(record: AnchorRow, image: Any) -> str:
    import numpy

    pixels = _enlarged(_rgb(image))
    segments = _enlarged(numpy.asarray(record.segments))
    keep = numpy.isin(segments, list(record.anchor))
    faded = (pixels * 0.3 + numpy.array([200, 200, 215]) * 0.7).astype(numpy.uint8)
    shown = numpy.where(keep[..., None], pixels, faded)
    inside = keep.copy()  # an anchor segment's pixels whose four neighbours are in the anchor too
    inside[1:, :] &= keep[:-1, :]
    inside[:-1, :] &= keep[1:, :]
    inside[:, 1:] &= keep[:, :-1]
    inside[:, :-1] &= keep[:, 1:]
    shown[keep & ~inside] = (249, 190, 40)
    ids = ", ".join(str(segment) for segment in record.anchor) or "none: the prediction holds anyway"
    return (
        f'<p class="rule">Anchor segments: <b>{escape(ids)}</b></p>'
        + _pictures([("image", pixels), ("anchor segments (outlined; the rest faded)", shown)])
        + _meter(record)
    )


# integrated gradients


def _ig_note(record: IGRow) -> str:
    target = "" if record.target is None else f" for class {record.target}"
    return (
        f'<p class="note">score{escape(target)} {record.input_prediction:.4g}; at the baseline '
        f"{record.baseline_prediction:.4g}; attributions add up to within {record.completeness_gap:.2%} "
        "of the difference</p>"
    )


def _tabular_ig(record: IGRow, values: dict[str, Any]) -> str:
    import numpy

    attributions = numpy.asarray(record.attributions, dtype=numpy.float64).reshape(-1)
    names = list(values) if len(values) == len(attributions) else [f"f{i}" for i in range(len(attributions))]
    labels = [f"{name} = {_short(values.get(name, '?'))}" for name in names]
    return _ig_note(record) + _bars(labels, attributions.tolist())


def _text_ig(record: IGRow, text: str) -> str:
    import numpy

    attributions = numpy.asarray(record.attributions, dtype=numpy.float64).reshape(-1)
    scale = float(numpy.abs(attributions).max()) or 1.0
    spans = []
    for token, value in zip(record.tokens, attributions.tolist(), strict=False):
        red, green, blue = UP if value >= 0 else DOWN
        alpha = 0.85 * abs(value) / scale
        spans.append(
            f'<span style="background:rgba({red},{green},{blue},{alpha:.2f})" title="{value:+.4g}">'
            f"{escape(token)}</span>"
        )
    tokens = f'<p class="tokens">{" ".join(spans)}</p>'
    bars = _bars(list(record.tokens), attributions.tolist())
    return f'<p class="note">text: {escape(text)}</p>{_ig_note(record)}{tokens}{bars}'


def _image_ig(record: IGRow, image: Any) -> str:
    import numpy

    pixels = _enlarged(_rgb(image))
    attributions = _enlarged(attribution_map(record.attributions))
    scale = float(numpy.abs(attributions).max()) or 1.0
    # square root: a few strong pixels would otherwise leave the rest of the map invisible
    strength = (numpy.sqrt(numpy.abs(attributions) / scale) * 0.85)[..., None]
    colour = numpy.where((attributions >= 0)[..., None], numpy.array(UP), numpy.array(DOWN))
    grey = pixels.mean(axis=-1, keepdims=True) * 0.7 + 60
    heat = (grey * (1 - strength) + colour * strength).clip(0, 255).astype(numpy.uint8)
    return _ig_note(record) + _pictures([("image", pixels), ("attributions (red raises, blue lowers)", heat)])


def attribution_map(attributions: Any, *, channels_first: bool = False) -> Any:
    """An image's attributions as one H,W map: summed over the channels (C,H,W or H,W,C)."""
    import numpy

    values = numpy.asarray(attributions, dtype=numpy.float64)
    if values.ndim == 3:
        return values.sum(axis=0 if channels_first else -1)
    return values


def _bars(labels: list[str], values: list[float]) -> str:
    """Signed horizontal bars, largest magnitude first."""
    order = sorted(range(len(values)), key=lambda i: -abs(values[i]))
    shown, rest = order[:MAX_BARS], order[MAX_BARS:]
    scale = max((abs(values[i]) for i in shown), default=0.0) or 1.0
    label_width, half, height = 300, 150, 20
    centre = label_width + half
    parts = [f'<line x1="{centre}" y1="0" x2="{centre}" y2="{height * len(shown)}" stroke="#999"/>']
    for line, i in enumerate(shown):
        y, value = line * height, values[i]
        length = abs(value) / scale * (half - 40)
        x = centre if value >= 0 else centre - length
        red, green, blue = UP if value >= 0 else DOWN
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 14}" font-size="12" text-anchor="end">{escape(labels[i])}</text>'
            f'<rect x="{x:.1f}" y="{y + 3}" width="{max(length, 0.5):.1f}" height="14" '
            f'fill="rgb({red},{green},{blue})">'
            f"<title>{escape(labels[i])}: {value:+.4g}</title></rect>"
            f'<text x="{centre + (length + 4 if value >= 0 else -length - 4):.1f}" y="{y + 14}" font-size="11" '
            f'text-anchor="{"start" if value >= 0 else "end"}">{value:+.3g}</text>'
        )
    total = height * len(shown)
    if rest:
        summed = sum(values[i] for i in rest)
        parts.append(
            f'<text x="{label_width - 8}" y="{total + 14}" font-size="11" text-anchor="end" fill="#666">'
            f"{len(rest)} more, together {summed:+.3g}</text>"
        )
        total += height
    return _svg(label_width + 2 * half, total + 4, "".join(parts), "attributions")


def _svg(width: float, height: float, body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}">{body}</svg>'
    )


def _short(value: Any) -> str:
    if isinstance(value, float) or hasattr(value, "dtype"):
        try:
            return f"{float(value):.4g}"
        except (TypeError, ValueError):
            return str(value)
    return str(value)


# images


def _rgb(image: Any) -> Any:
    """H,W,3 uint8 from an image of any range, grey (H,W or H,W,1) or colour (H,W,3/4)."""
    import numpy

    values = numpy.asarray(image, dtype=numpy.float64)
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim == 2:
        values = numpy.repeat(values[..., None], 3, axis=-1)
    values = values[..., :3]
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) * 255 if high > low else numpy.zeros_like(values)
    return scaled.astype(numpy.uint8)


def _pictures(items: list[tuple[str, Any]]) -> str:
    figures = "".join(
        f'<figure><img alt="{escape(caption)}" src="{png_data_uri(pixels)}"><figcaption class="note">'
        f"{escape(caption)}</figcaption></figure>"
        for caption, pixels in items
    )
    return f'<div class="pictures">{figures}</div>'


def _enlarged(values: Any) -> Any:
    """Small images (and maps over them) repeated by whole pixels to at least MIN_PIXELS."""
    import numpy

    factor = max(1, -(-MIN_PIXELS // max(values.shape[0], values.shape[1])))
    return numpy.repeat(numpy.repeat(values, factor, axis=0), factor, axis=1) if factor > 1 else values


def png_data_uri(pixels: Any) -> str:
    """An H,W,3 uint8 array as a PNG data URI."""
    import numpy

    height, width = pixels.shape[0], pixels.shape[1]
    raw = numpy.concatenate([numpy.zeros((height, 1), numpy.uint8), pixels.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
    png += chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
