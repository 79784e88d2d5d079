"""A drift result as a few lines of text (:func:`drift_summary`, for the command line) and
as one self-contained HTML page: the verdict, a table of the features (drifted first), and
per feature the reference and current distributions as small inline SVG charts drawn here
(no matplotlib, no JavaScript, no external files), so a report of dozens of features is
written in milliseconds and reads the same in any browser.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nb2pipe.files import write_whole
from nb2pipe.monitoring.drift import MMD_MAX_ROWS

if TYPE_CHECKING:
    import numpy
    import pandas

    from nb2pipe.monitoring.drift import DriftResult, FeatureDrift

REFERENCE_COLOUR, CURRENT_COLOUR = "#4c78a8", "#f58518"
WIDTH, HEIGHT, AXIS = 360, 120, 20  # px; AXIS: room under the bars for labels
BINS = 24
MOST_CATEGORIES = 10  # more are drawn as one "other" bar

STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;background:#fafafa}"
    "main{max-width:1180px;margin:0 auto;padding:1.5em}"
    ".verdict{padding:1.2em 1.5em;color:#fff;border-radius:6px}"
    ".verdict.drift{background:#c0392b}.verdict.calm{background:#1e8449}"
    ".verdict h1{margin:0;font-size:2.4em}.verdict p{margin:.3em 0 0;font-size:1.15em}"
    "dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em;margin:1.2em 0}"
    "dl.facts dt{color:#666}dl.facts dd{margin:0}"
    "table{border-collapse:collapse;width:100%;background:#fff}"
    "th,td{border-bottom:1px solid #e3e3e3;padding:.35em .6em;text-align:left}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.drifted td{background:#fdecea}tr.drifted td.flag{color:#c0392b;font-weight:600}"
    ".plots{display:flex;flex-wrap:wrap;gap:1em}"
    ".plot{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:.6em;width:" + str(WIDTH) + "px}"
    ".plot.drifted{border-color:#c0392b}.plot h3{margin:0 0 .2em;font-size:1em;overflow-wrap:anywhere}"
    ".plot p{margin:0 0 .3em;color:#666;font-size:.85em}"
    ".legend span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 .8em;vertical-align:middle}"
    "svg text{font-size:10px;fill:#555}"
)


def drift_report_html(result: DriftResult, reference: pandas.DataFrame, current: pandas.DataFrame) -> str:
    ordered = sorted(result.features, key=lambda feature: (not feature.is_drift, feature.p_value))
    by_name = {feature.name: feature for feature in result.features}
    names = [feature.name for feature in ordered] or [str(column) for column in reference.columns]
    columns = {str(column): column for column in reference.columns}
    plots = [
        _plot_card(name, by_name.get(name), reference[columns[name]], current[columns[name]])
        for name in names
        if name in columns and columns[name] in current.columns
    ]
    verdict = "Drift detected" if result.is_drift else "No drift"
    title = f"{verdict}: drift report"
    parts = [
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{STYLE}</style></head><body><main>',
        f'<header class="verdict {"drift" if result.is_drift else "calm"}"><h1>{verdict}</h1>'
        f"<p>{escape(_headline(result))}</p></header>",
        _facts(result),
    ]
    if result.features:
        parts.append("<h2>Features</h2>" + _feature_table(ordered))
    parts.append(
        '<h2>Distributions</h2><p class="legend">share of rows per bin or category:'
        f'<span style="background:{REFERENCE_COLOUR}"></span>reference'
        f'<span style="background:{CURRENT_COLOUR}"></span>current</p>'
        f'<div class="plots">{"".join(plots)}</div>'
    )
    parts.append("</main></body></html>")
    return "".join(parts)


def drift_summary(result: DriftResult) -> str:
    """The verdict, then one line per drifted feature, most significant first."""
    rows = f"{result.reference_rows} reference rows, {result.current_rows} current rows"
    if result.rejected_requests:
        rows += f" ({result.rejected_requests} rejected requests not tested)"
    verdict = "drift" if result.is_drift else "no drift"
    if result.method == "mmd":
        return (
            f"{verdict}: mmd p-value {_number(result.p_value)} (drift below {result.threshold:g}), "
            f"distance {_number(result.distance)}; {rows}"
        )
    drifted = sorted(result.drifted, key=lambda feature: feature.p_value)
    lines = [
        f"{verdict}: {len(drifted)} of {len(result.features)} features drifted "
        f"({result.method}, p-value below {result.threshold:.3g}; {rows})"
    ]
    width = max((len(feature.name) for feature in drifted), default=0)
    for feature in drifted:
        lines.append(
            f"  {feature.name:<{width}}  {feature.test:<4}  statistic {_number(feature.statistic)}"
            f"  p-value {_number(feature.p_value)}"
        )
    return "\n".join(lines)


def write_drift_report(
    result: DriftResult, reference: pandas.DataFrame, current: pandas.DataFrame, path: str | Path
) -> Path:
    """Write the report to ``path`` whole or not at all (a temporary file, then a rename)."""

    target = Path(path)
    write_whole(target, drift_report_html(result, reference, current))
    return target


def _headline(result: DriftResult) -> str:
    if result.method == "mmd":
        return f"MMD test on all columns together: p-value {_number(result.p_value)}"
    return f"{len(result.drifted)} of {len(result.features)} features drifted"


def _facts(result: DriftResult) -> str:
    rows = f"{result.reference_rows:,} reference, {result.current_rows:,} current"
    facts = [("method", _method_text(result.method))]
    if result.method == "mmd":
        facts.append(("drift when", f"p-value < {result.threshold:g}"))
        facts.append(("MMD² distance", _number(result.distance)))
        if max(result.reference_rows, result.current_rows) > MMD_MAX_ROWS:
            rows += f" (tested on a seeded sample of at most {MMD_MAX_ROWS:,} rows of each)"
    else:
        facts.append(("drift when", f"a feature's p-value < {result.threshold:.3g} (after the correction)"))
    facts.append(("rows compared", rows))
    if result.rejected_requests:
        facts.append(("not tested", f"{result.rejected_requests:,} requests the model rejected (bad payloads)"))
    items = "".join(f"<dt>{escape(key)}</dt><dd>{escape(value)}</dd>" for key, value in facts)
    return f'<dl class="facts">{items}</dl>'


def _method_text(method: str) -> str:
    return {
        "tabular": "tabular: Kolmogorov-Smirnov per numeric, Chi-squared per categorical feature",
        "ks": "Kolmogorov-Smirnov per feature",
        "chi2": "Chi-squared per feature",
        "mmd": "maximum mean discrepancy (permutation test) on standardised features",
    }.get(method, method)


def _feature_table(features: list[FeatureDrift]) -> str:
    rows = []
    for feature in features:
        rows.append(
            f'<tr class="{"drifted" if feature.is_drift else ""}"><td>{escape(feature.name)}</td>'
            f"<td>{escape(feature.kind)}</td><td>{escape(feature.test)}</td>"
            f'<td class="num">{_number(feature.statistic)}</td><td class="num">{_number(feature.p_value)}</td>'
            f'<td class="flag">{"yes" if feature.is_drift else "no"}</td></tr>'
        )
    header = "<tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th><th>drifted</th></tr>"
    return f"<table><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _plot_card(name: str, feature: FeatureDrift | None, before: pandas.Series, after: pandas.Series) -> str:
    kind = feature.kind if feature is not None else _kind_of(before)
    chart = _histogram(before, after) if kind == "numeric" else _bars(before, after)
    caption = (
        f"{feature.test} statistic {_number(feature.statistic)}, p-value {_number(feature.p_value)}"
        + (" - drifted" if feature.is_drift else "")
        if feature is not None
        else kind
    )
    drifted = " drifted" if feature is not None and feature.is_drift else ""
    return f'<figure class="plot{drifted}"><h3>{escape(name)}</h3><p>{escape(caption)}</p>{chart}</figure>'


def _kind_of(series: pandas.Series) -> str:
    import pandas

    numeric = pandas.api.types.is_numeric_dtype(series.dtype) and not pandas.api.types.is_bool_dtype(series.dtype)
    return "numeric" if numeric else "categorical"


def _svg(body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">{"".join(body)}</svg>'
    )


def _histogram(before: pandas.Series, after: pandas.Series) -> str:
    """Overlaid histograms of the shares of rows per bin, on bins shared by both tables.
    The outer 0.5 % of values go into the end bins, so one outlier does not flatten the rest."""
    import numpy

    first, second = _finite(before), _finite(after)
    both = numpy.concatenate([first, second])
    if both.size == 0:
        return _svg(['<text x="8" y="20">no finite values</text>'], "no finite values")
    low, high = (float(edge) for edge in numpy.percentile(both, [0.5, 99.5]))
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = numpy.linspace(low, high, BINS + 1)
    shares = [_shares_per_bin(values, edges) for values in (first, second)]
    tallest = max(float(share.max()) for share in shares) or 1.0
    plot_height = HEIGHT - AXIS
    step = WIDTH / BINS
    body = [f'<line x1="0" y1="{plot_height}" x2="{WIDTH}" y2="{plot_height}" stroke="#999"/>']
    for share, colour in zip(shares, (REFERENCE_COLOUR, CURRENT_COLOUR), strict=True):
        for index, value in enumerate(share):
            if value <= 0:
                continue
            height = value / tallest * (plot_height - 12)
            body.append(
                f'<rect x="{index * step:.1f}" y="{plot_height - height:.1f}" width="{step - 1:.1f}" '
                f'height="{height:.1f}" fill="{colour}" fill-opacity="0.5"/>'
            )
    body.append(f'<text x="2" y="{plot_height + 13}">{_axis_number(low)}</text>')
    body.append(f'<text x="{WIDTH - 2}" y="{plot_height + 13}" text-anchor="end">{_axis_number(high)}</text>')
    body.append(f'<text x="2" y="10">max {tallest:.0%} of rows per bin</text>')
    return _svg(body, "histogram of reference and current values")


def _finite(series: pandas.Series) -> numpy.ndarray:
    import numpy
    import pandas

    values = pandas.to_numeric(series, errors="coerce").to_numpy(dtype=numpy.float64)
    return values[numpy.isfinite(values)]


def _shares_per_bin(values: numpy.ndarray, edges: numpy.ndarray) -> numpy.ndarray:
    import numpy

    if values.size == 0:
        return numpy.zeros(len(edges) - 1)
    counts, _ = numpy.histogram(numpy.clip(values, edges[0], edges[-1]), bins=edges)
    return counts / values.size


def _axis_number(value: float) -> str:
    return escape(f"{value:.4g}")


def _bars(before: pandas.Series, after: pandas.Series) -> str:
    """Grouped bars of the share of rows per category, the most common categories first."""
    first = before.astype(object).where(before.notna(), "(missing)").astype(str).value_counts(normalize=True)
    second = after.astype(object).where(after.notna(), "(missing)").astype(str).value_counts(normalize=True)
    combined = first.add(second, fill_value=0).sort_values(ascending=False, kind="stable")
    shown: list[Any] = list(combined.index[:MOST_CATEGORIES])
    rest = list(combined.index[MOST_CATEGORIES:])
    groups = [(str(label), float(first.get(label, 0.0)), float(second.get(label, 0.0))) for label in shown]
    if rest:
        groups.append((f"other ({len(rest)})", float(first.reindex(rest).sum()), float(second.reindex(rest).sum())))
    tallest = max((max(a, b) for _, a, b in groups), default=0.0) or 1.0
    plot_height = HEIGHT - AXIS
    slot = WIDTH / max(len(groups), 1)
    bar = max(min(slot / 2 - 2, 24), 1)
    body = [f'<line x1="0" y1="{plot_height}" x2="{WIDTH}" y2="{plot_height}" stroke="#999"/>']
    for index, (label, share_before, share_after) in enumerate(groups):
        left = index * slot + (slot - 2 * bar) / 2
        for offset, share, colour, side in (
            (0.0, share_before, REFERENCE_COLOUR, "reference"),
            (bar, share_after, CURRENT_COLOUR, "current"),
        ):
            height = share / tallest * (plot_height - 12)
            body.append(
                f'<rect x="{left + offset:.1f}" y="{plot_height - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{colour}"><title>{escape(label)}: {share:.1%} of {side} rows'
                "</title></rect>"
            )
        fits = max(int(slot / 6), 3)  # characters of 10 px text under one group
        short = label if len(label) <= fits else label[: fits - 1] + "…"
        middle = index * slot + slot / 2
        body.append(f'<text x="{middle:.1f}" y="{plot_height + 13}" text-anchor="middle">{escape(short)}</text>')
    body.append(f'<text x="2" y="10">max {tallest:.0%} of rows</text>')
    return _svg(body, "shares of reference and current rows per category")
