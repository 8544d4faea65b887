"""Plotly figure builders: data in, figure out — no Streamlit, so each is unit-testable."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from decisioning import stages as flow
from explain import i18n


def stage_funnel(funnel: pd.DataFrame, lang: str = "en") -> go.Figure:
    """The funnel in the flow's order: interactions still reaching each stage (left) and the
    candidate rows that stopped there (right).

    Parameters
    ----------
    funnel : DataFrame
        :func:`decision_log.queries.funnel`'s columns.
    """
    from plotly.subplots import make_subplots

    df = funnel.reset_index(drop=True)
    labels = [str(x) for x in df["label"]]
    last = len(df) - 1
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=(i18n.t("fig.reaching", lang), i18n.t("fig.ending", lang)))
    reach = df["interactions_reaching"].astype("float64")
    share = df["reaching_share"].astype("float64")
    fig.add_trace(go.Bar(
        x=reach, y=labels, orientation="h", marker_color="#1565c0",
        text=[i18n.percent(s, lang) if s == s else "" for s in share], textposition="auto",
        hovertemplate="%{y}: %{x:,} " + i18n.t("fig.reach_hover", lang) + "<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(
        x=df["rows"], y=labels, orientation="h",
        marker_color=["#2e7d32" if i == last else "#c62828" for i in range(len(df))],
        hovertemplate="%{y}: %{x:,} " + i18n.t("fig.end_hover", lang) + "<extra></extra>"), row=1, col=2)
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title_text=i18n.t("fig.interactions", lang), row=1, col=1)
    fig.update_xaxes(title_text=i18n.t("fig.candidate_rows", lang), row=1, col=2)
    fig.update_layout(showlegend=False, margin={"l": 10, "r": 10, "t": 30, "b": 10}, height=max(260, 48 * len(df)),
                      separators=_separators(lang))
    return fig


# -- explanations ----------------------------------------------------------------------------

_UP, _DOWN, _TOTAL = "#2e7d32", "#c62828", "#37474f"


def _separators(lang: str) -> str:
    """Plotly's decimal and thousands signs for ``lang`` (1,234.5 / 1.234,5)."""
    return ",." if lang == "de" else ".,"


_HOUR, _DAY = 3_600_000, 86_400_000  # plotly's tick spacing of a date axis, in milliseconds
#: German date ticks in numbers (plotly's own name the months in English): 08.11. / 11.2026 / 2026
_DE_DATE_TICKS = [
    {"dtickrange": [None, _HOUR], "value": "%H:%M:%S"},
    {"dtickrange": [_HOUR, _DAY], "value": "%d.%m. %H:%M"},
    {"dtickrange": [_DAY, "M1"], "value": "%d.%m."},
    {"dtickrange": ["M1", "M12"], "value": "%m.%Y"},
    {"dtickrange": ["M12", None], "value": "%Y"},
]


def date_axis(fig: go.Figure, lang: str) -> go.Figure:
    """Date ticks of every x axis in ``lang``: in German as numbers (``08.11.``), in English
    plotly's own (``Nov 8``)."""
    if lang == "de":
        fig.update_xaxes(tickformatstops=_DE_DATE_TICKS)
    return fig


def day_hover(lang: str) -> str:
    """A hover label's day in ``lang`` (plotly's d3 format of the x value)."""
    return "%{x|%d.%m.%Y}" if lang == "de" else "%{x|%Y-%m-%d}"


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def attribution_waterfall(features: list[str], phi: list[float] | np.ndarray, base_value: float,
                          raw_output: float, labels: list[str] | None = None, max_bars: int = 12,
                          title: str | None = None, outcome: str = "accepting", lang: str = "en") -> go.Figure:
    """SHAP waterfall in log-odds, from the model's base value to its output for this row.

    Bars are the largest attributions (by |value|); the rest are summed into one bar, so the
    bars always add up exactly to the output.  The top axis shows the matching probability.

    Parameters
    ----------
    features, phi : the attributions (log-odds) and their feature names.
    base_value, raw_output : the explainer's base value and the model's log-odds output.
    labels : what to print per feature (e.g. ``Last purchase 214 days ago``); default the names.
    """
    phi = np.asarray(phi, dtype=np.float64)
    labels = list(labels) if labels is not None else list(features)
    order = np.argsort(-np.abs(phi), kind="stable")
    shown = order[:max_bars]
    rest = order[max_bars:]
    y = [i18n.t("fig.base_value", lang)] + [labels[i] for i in shown]
    x = [base_value] + [float(phi[i]) for i in shown]
    measure = ["absolute"] + ["relative"] * len(shown)
    if len(rest):
        y.append(i18n.t("fig.other_features", lang, n=len(rest)))
        x.append(float(phi[rest].sum()))
        measure.append("relative")
    y.append(i18n.t("fig.model_output", lang))
    x.append(raw_output)
    measure.append("total")
    fig = go.Figure(go.Waterfall(
        orientation="h", y=y, x=x, measure=measure,
        increasing={"marker": {"color": _UP}}, decreasing={"marker": {"color": _DOWN}},
        totals={"marker": {"color": _TOTAL}},
        text=[f"{v:+.3f}" if m == "relative" else f"{v:.3f} (p={_logistic(v):.3f})" for v, m in zip(x, measure)],
        textposition="outside",
        hovertemplate="%{y}: %{x:.4f} log-odds<extra></extra>",
        connector={"line": {"color": "#b0bec5"}},
    ))
    lo = min(np.cumsum([base_value] + x[1:-1]).min(), base_value, raw_output)
    hi = max(np.cumsum([base_value] + x[1:-1]).max(), base_value, raw_output)
    pad = 0.25 * (hi - lo or 1.0)
    ticks = [p for p in (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
             if lo - pad <= math.log(p / (1 - p)) <= hi + pad]
    fig.update_layout(
        title=title, height=max(320, 28 * len(y) + 110),
        yaxis={"autorange": "reversed"}, margin={"l": 10, "r": 40, "t": 60 if title else 40, "b": 40},
        xaxis={"title": i18n.t("fig.log_odds_of", lang, outcome=outcome), "range": [lo - pad, hi + pad]},
        xaxis2={"overlaying": "x", "side": "top", "range": [lo - pad, hi + pad], "title": i18n.t("fig.probability", lang),
                "tickvals": [math.log(p / (1 - p)) for p in ticks], "ticktext": [i18n.percent(p, lang, 1 if p < 0.01 or p > 0.99 else 0) for p in ticks],
                "showgrid": False},
        showlegend=False, separators=_separators(lang),
    )
    fig.add_trace(go.Scatter(x=[lo - pad, hi + pad], y=[y[0], y[0]], xaxis="x2", mode="markers",
                             marker={"opacity": 0}, hoverinfo="skip", showlegend=False))
    return fig


def contrast_bars(terms: list[tuple[str, float]], winner: str, other: str, title: str | None = None,
                  lang: str = "en", propensity: bool = False) -> go.Figure:
    """Horizontal bars: how many times higher each term made the winner's priority than the
    other's (a log axis, so the factors multiply up to the last bar, the whole ratio).

    Each term is ``log(winner) − log(other)``; the labels show it as a factor (×2.4, ×0.8).
    With ``propensity`` the terms split the propensity term by the two models' attributions
    (log-odds, so a factor of the odds), and the last bar is their sum.
    """
    total_label = i18n.t("fig.contrast_total_p" if propensity else "fig.contrast_total", lang)
    names = [t[0] for t in terms] + [total_label]
    vals = [float(t[1]) for t in terms]
    vals.append(sum(vals))
    colors = [_UP if v >= 0 else _DOWN for v in vals[:-1]] + [_TOTAL]

    def times(v: float) -> str:
        f = math.exp(v)
        return "×" + (i18n.number(f, lang, 2) if f < 100 else i18n.number(f, lang))

    fig = go.Figure(go.Bar(
        x=vals, y=names, orientation="h", marker_color=colors,
        text=[times(v) for v in vals], textposition="outside", cliponaxis=False,
        customdata=[f"{v:+.4f}" for v in vals],
        hovertemplate="%{y}: %{text} (log %{customdata})<extra></extra>",
    ))
    lo, hi = min(0.0, *vals), max(0.0, *vals)
    pad = 0.25 * (hi - lo or 1.0)
    fig.update_layout(
        title=title, height=max(260, 30 * len(names) + 100), yaxis={"autorange": "reversed", "automargin": True},
        xaxis={"title": i18n.t("fig.favours", lang, other=other, winner=winner), "range": [lo - pad, hi + pad],
               "showticklabels": False, "zeroline": True},
        margin={"l": 10, "r": 40, "t": 50 if title else 20, "b": 40}, separators=_separators(lang),
    )
    return fig


def global_importance(imp: pd.DataFrame, top: int = 15, title: str | None = None, lang: str = "en") -> go.Figure:
    """Mean |SHAP| per feature (bars), one colour per segment when there are several.

    Parameters
    ----------
    imp : DataFrame
        Columns ``feature``, ``mean_abs`` and optionally ``segment`` and ``label``
        (see ``decision_log.explanations.importance``).
    """
    if "segment" not in imp.columns:
        imp = imp.assign(segment="all")
    label_col = "label" if "label" in imp.columns else "feature"
    overall = imp.groupby(label_col)["mean_abs"].mean().sort_values(ascending=False)
    keep = list(overall.index[:top])
    fig = go.Figure()
    for seg, g in imp[imp[label_col].isin(keep)].groupby("segment", sort=True):
        g = g.set_index(label_col).reindex(keep)
        fig.add_trace(go.Bar(x=g["mean_abs"], y=keep, orientation="h", name=str(seg),
                             hovertemplate="%{y}: %{x:.4f}<extra>" + str(seg) + "</extra>"))
    fig.update_layout(
        title=title, barmode="group", height=max(320, 26 * len(keep) * max(1, min(3, len(fig.data))) // 2 + 120),
        yaxis={"autorange": "reversed", "automargin": True, "dtick": 1}, xaxis_title=i18n.t("fig.mean_shap", lang),
        margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 40},
        showlegend=len(fig.data) > 1, separators=_separators(lang),
    )
    return fig


#: Up to this many points a scatter is drawn as SVG: a WebGL context costs the browser about
#: 0.3 s to set up, which SVG's drawing outweighs only for thousands of points (Chromium without
#: a GPU, a rerun drawing three channels' points: 600 points 0.2 s as SVG / 0.37 s as WebGL,
#: 1,500 0.3 / 0.38 s, 3,000 0.46 / 0.39 s, 5,000 0.63 / 0.45 s).
SVG_POINTS_MAX = 2000


def dependence(dep: pd.DataFrame, feature_label: str, categories: list[str] | None = None,
               title: str | None = None, lang: str = "en") -> go.Figure:
    """Feature value vs its attribution, one point per explained candidate.

    Parameters
    ----------
    dep : DataFrame
        Columns ``x`` (model-matrix value), ``phi`` and optionally ``channel``.
    categories : for a category feature, its values (``x`` is the position in this list).
    """
    xs = dep["x"].to_numpy(dtype=np.float64)
    fig = go.Figure()
    groups = dep.groupby("channel") if "channel" in dep.columns else [("all", dep)]
    scatter = go.Scatter if len(dep) <= SVG_POINTS_MAX else go.Scattergl
    for ch, g in groups:
        gx = g["x"].to_numpy(dtype=np.float64)
        fig.add_trace(scatter(
            x=gx, y=g["phi"], mode="markers", name=str(ch), marker={"size": 5, "opacity": 0.55},
            hovertemplate=feature_label + " %{x}: %{y:+.3f} " + i18n.t("fig.log_odds", lang) + "<extra>" + str(ch) + "</extra>",
        ))
    xaxis: dict = {"title": feature_label}
    if categories:
        xaxis.update(tickvals=list(range(len(categories))), ticktext=categories)
    elif len(xs) and set(np.unique(xs[~np.isnan(xs)])) <= {0.0, 1.0}:
        xaxis.update(tickvals=[0, 1], ticktext=[i18n.t("value.no", lang), i18n.t("value.yes", lang)])
    fig.add_hline(y=0, line={"color": "#90a4ae", "width": 1})
    fig.update_layout(title=title, height=380, xaxis=xaxis, yaxis_title=i18n.t("fig.shap_value", lang),
                      margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 40}, separators=_separators(lang))
    return fig


# -- dashboard views -------------------------------------------------------------------------------

_ISSUE_COLORS = ["#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#455a64"]


def timeline(daily: pd.DataFrame, changes: pd.DataFrame | None = None, value: str = "contacts",
             title: str | None = None, lang: str = "en", y_title: str | None = None) -> go.Figure:
    """Stacked daily bars by issue, with strategy-version changes marked as vertical lines.

    Parameters
    ----------
    daily : DataFrame with columns ``day``, ``issue`` and ``value``.
    changes : DataFrame with columns ``version`` and ``first_used`` (its first decision).
    """
    fig = go.Figure()
    for i, (issue, g) in enumerate(daily.groupby("issue", sort=True)):
        fig.add_trace(go.Bar(x=g["day"], y=g[value], name=str(issue),
                             marker_color=_ISSUE_COLORS[i % len(_ISSUE_COLORS)],
                             hovertemplate=day_hover(lang) + ": %{y:,.0f}<extra>" + str(issue) + "</extra>"))
    _mark_changes(fig, changes, lang)
    date_axis(fig, lang)
    fig.update_layout(barmode="stack", title=title, height=340, yaxis_title=y_title or value.replace("_", " "),
                      margin={"l": 10, "r": 10, "t": 50 if title else 30, "b": 30},
                      legend_title_text=i18n.t("by.issue", lang), separators=_separators(lang))
    return fig


def _mark_changes(fig: go.Figure, changes: pd.DataFrame | None, lang: str) -> None:
    """A dotted line where each strategy version made its first decision."""
    if changes is None:
        return
    for r in changes.itertuples(index=False):
        x = pd.Timestamp(r.first_used).to_pydatetime()
        fig.add_vline(x=x, line={"color": "#37474f", "dash": "dot", "width": 1})
        fig.add_annotation(x=x, y=1, yref="paper", text=i18n.t("fig.strategy", lang, version=r.version[:8]),
                           showarrow=False, xanchor="left", yanchor="bottom", font={"size": 10})


#: Points of a line up to which each is marked: beyond, the markers crowd into a band and each is
#: an SVG element the browser draws (a three-year daily trend had 3,360 of them: 0.3 s a redraw).
MARKERS_MAX = 60


def trends(df: pd.DataFrame, changes: pd.DataFrame | None = None, currency: str = "EUR",
           lang: str = "en") -> go.Figure:
    """Acceptance rate, realised margin, and churn of reached vs not reached customers over
    time (:func:`decision_log.queries.trends`), one panel each, strategy changes marked."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.09,
                        subplot_titles=(i18n.t("fig.acceptance_rate", lang),
                                        i18n.t("fig.margin_currency", lang, currency=currency),
                                        i18n.t("fig.churn", lang)))
    pct = "%{y:.1%}"
    mode = "lines+markers" if len(df) <= MARKERS_MAX else "lines"  # (three years per day: 3,000 markers)
    fig.add_trace(go.Scatter(x=df["period"], y=df["acceptance_rate"], mode=mode, line={"color": "#1565c0"},
                             name=i18n.t("fig.acceptance_rate", lang), customdata=df["with_outcome"],
                             hovertemplate=day_hover(lang) + ": " + pct + " (n = %{customdata:,})<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Bar(x=df["period"], y=df["margin"], marker_color=_UP, name=i18n.t("fig.margin", lang),
                         hovertemplate=day_hover(lang) + ": %{y:,.2f} " + currency + "<extra></extra>"), row=2, col=1)
    for col, n_col, key, color in (("churn_reached", "n_reached", "fig.churn_reached", "#c62828"),
                                   ("churn_not_reached", "n_not_reached", "fig.churn_not_reached", "#90a4ae")):
        fig.add_trace(go.Scatter(x=df["period"], y=df[col], mode=mode, line={"color": color},
                                 name=i18n.t(key, lang), customdata=df[n_col],
                                 hovertemplate=day_hover(lang) + ": " + pct + " (n = %{customdata:,})<extra>"
                                 + i18n.t(key, lang) + "</extra>"), row=3, col=1)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(tickformat=",.0f", row=2, col=1)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=3, col=1)
    _mark_changes(fig, changes, lang)
    date_axis(fig, lang)
    fig.update_layout(height=620, margin={"l": 10, "r": 10, "t": 40, "b": 30}, separators=_separators(lang),
                      legend={"orientation": "h", "yanchor": "top", "y": -0.05, "x": 0})
    return fig


def bars(df: pd.DataFrame, x: str, y: str, title: str | None = None, fmt: str = ",.0f",
         color: str = "#1565c0", height: int | None = None, x_title: str | None = None) -> go.Figure:
    """Horizontal bars of ``x`` per ``y`` in the frame's order (largest first, as sorted by the query);
    the x axis is titled ``x_title`` (default: the column's name)."""
    fig = go.Figure(go.Bar(x=df[x], y=df[y].astype(str), orientation="h", marker_color=color,
                           hovertemplate="%{y}: %{x:" + fmt + "}<extra></extra>"))
    fig.update_layout(title=title, yaxis={"autorange": "reversed", "automargin": True},
                      xaxis_title=x_title or x.replace("_", " "),
                      height=height or max(260, 24 * len(df) + 90),
                      margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 40})
    return fig


def decision_grid(cands: pd.DataFrame, stages: list[tuple[str, str]] | None = None,
                  names: dict[str, str] | None = None, lang: str = "en") -> go.Figure:
    """The action × stage grid of one decision: how far each action got, and why it stopped.

    Parameters
    ----------
    cands : DataFrame with columns ``action_id``, ``stage``, ``reason`` and (optionally)
        ``selected``, one row per action (for a component-level import: where it got furthest).
    stages : the flow's filtering stages in order, as (name, label); default Klartext's.  A
        stage not listed (``ranked``, ``selected``, Pega's ``Output``) is a result, not a filter.
    names : action id → name (the rows show names; the id is in the hover).
    """
    names = names or {}
    if stages is None:
        stages = [(s.name, s.short) for s in flow.FILTERS]
    depth = {name: i for i, (name, _) in enumerate(stages)}
    actions = list(cands["action_id"])
    selected = cands["selected"].fillna(False).astype(bool).tolist() if "selected" in cands else \
        [s == "selected" for s in cands["stage"]]
    z, text = [], []
    for r, sel in zip(cands.itertuples(index=False), selected):
        survived = sel or r.stage not in depth
        stop = depth.get(r.stage, len(stages))
        row, hover = [], []
        for i in range(len(stages)):
            if i < stop or survived:
                row.append(1.0)
                hover.append(i18n.t("fig.passed", lang))
            elif i == stop:
                row.append(0.0)
                hover.append(str(r.reason))
            else:
                row.append(None)
                hover.append(i18n.t("fig.not_reached", lang))
        row.append(2.0 if sel else 1.0 if survived else None)
        hover.append(i18n.t("fig.selected", lang) if sel else (i18n.t("fig.not_shown", lang, stage=r.stage)
                                                               if survived else i18n.t("fig.not_reached", lang)))
        z.append(row)
        text.append(hover)
    fig = go.Figure(go.Heatmap(
        z=z, x=[label for _, label in stages] + [i18n.t("fig.result", lang)], y=[names.get(a, a) for a in actions],
        text=text, customdata=[[a] * (len(stages) + 1) for a in actions],
        hovertemplate="%{y} (%{customdata}) · %{x}: %{text}<extra></extra>", showscale=False, xgap=2, ygap=2,
        colorscale=[[0, "#c62828"], [0.5, "#a5d6a7"], [1, "#1b5e20"]], zmin=0, zmax=2,
    ))
    fig.update_layout(height=max(300, 22 * len(actions) + 80), yaxis={"autorange": "reversed", "automargin": True},
                      margin={"l": 10, "r": 10, "t": 20, "b": 30}, separators=_separators(lang))
    return fig


def priority_factors(cands: pd.DataFrame, names: dict[str, str] | None = None, lang: str = "en") -> go.Figure:
    """The four priority factors of the scored candidates (log scale), one group per action."""
    names = names or {}
    scored = cands[cands["propensity"].notna()]
    labels = [names.get(a, a) for a in scored["action_id"]]
    fig = go.Figure()
    for name, color in (("propensity", "#1565c0"), ("value", "#2e7d32"), ("context_weight", "#ef6c00"),
                        ("lever", "#6a1b9a"), ("priority", "#37474f")):
        label = i18n.t(f"term.{name}", lang)
        fig.add_trace(go.Bar(y=labels, x=scored[name], name=label, orientation="h", customdata=scored["action_id"],
                             marker_color=color, hovertemplate="%{y} (%{customdata}) " + label + ": %{x:.4g}<extra></extra>"))
    fig.update_layout(barmode="group", xaxis={"type": "log", "title": i18n.t("fig.factor_log", lang)},
                      yaxis={"autorange": "reversed", "automargin": True}, height=max(320, 60 * len(scored) + 80),
                      margin={"l": 10, "r": 10, "t": 20, "b": 40}, separators=_separators(lang))
    return fig


def tradeoff_scatter(df: pd.DataFrame, baseline_churn: float | None, key_label: str = "issue",
                     title: str | None = None, lang: str = "en", currency: str = "EUR") -> go.Figure:
    """Margin per contact vs. churn of the customers reached, one bubble per issue or channel.

    Bubbles are sized by contacts; the dashed line is the churn of customers who got no action.
    """
    size = df["contacts"].to_numpy(dtype=np.float64)
    fig = go.Figure(go.Scatter(
        x=df["margin_per_contact"], y=df["churn_reached"], mode="markers+text", text=df["key"],
        textposition="top center",
        marker={"size": 12 + 40 * np.sqrt(size / max(size.max(), 1)), "color": "#1565c0", "opacity": 0.7},
        customdata=np.stack([df["contacts"], df["margin"]], axis=1),
        hovertemplate="%{text}: " + i18n.t("fig.scatter_hover", lang, currency=currency) + "<extra></extra>",
    ))
    if baseline_churn is not None:
        fig.add_hline(y=baseline_churn, line={"dash": "dash", "color": "#c62828"},
                      annotation_text=i18n.t("fig.churn_without", lang, churn=i18n.percent(baseline_churn, lang)),
                      annotation_position="top left")  # above the line: clear of the bubbles' labels below it
    fig.update_layout(title=title, height=420, xaxis_title=i18n.t("fig.margin_per_contact", lang, currency=currency),
                      yaxis={"title": i18n.t("fig.churn_of_reached", lang), "tickformat": ".0%"},
                      margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 40},
                      separators=_separators(lang))
    return fig


def calibration(cal: list[dict], title: str | None = None) -> go.Figure:
    """Reliability diagram: mean predicted probability vs. observed rate per bin (size = rows)."""
    df = pd.DataFrame(cal)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#90a4ae"},
                             name="perfectly calibrated", hoverinfo="skip"))
    if not df.empty:
        fig.add_trace(go.Scatter(
            x=df["mean_predicted"], y=df["observed_rate"], mode="lines+markers", name="model",
            marker={"size": 6 + 20 * np.sqrt(df["n"] / df["n"].max()), "color": "#1565c0"},
            customdata=df["n"], hovertemplate="predicted %{x:.3f}, observed %{y:.3f} (%{customdata:,} rows)<extra></extra>"))
    fig.update_layout(title=title, height=360, xaxis={"title": "mean predicted", "range": [0, 1]},
                      yaxis={"title": "observed acceptance", "range": [0, 1]},
                      margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 40})
    return fig


def frontier(sweep: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Expected margin vs expected retention along the weight sweep; the strategy's own point
    and the Pareto-efficient points are marked (see ``analysis.tradeoff.sweep``)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=sweep["retention"], y=sweep["margin"], mode="lines+markers", name="weight settings",
        marker={"size": 7, "color": np.where(sweep["efficient"], "#1565c0", "#b0bec5")},
        customdata=np.stack([sweep["lambda"], sweep["margin_weight"], sweep["retention_weight"],
                             sweep["incentive_spend"], sweep["changed"]], axis=1),
        hovertemplate="λ=%{customdata[0]:.2f} (margin w. %{customdata[1]:.2f}, retention w. %{customdata[2]:.2f})"
                      "<br>margin %{y:,.0f} · retention %{x:,.0f}<br>incentives %{customdata[3]:,.0f} · "
                      "%{customdata[4]:.1%} of winners change<extra></extra>",
    ))
    cur = sweep[sweep["current"]]
    if len(cur):
        fig.add_trace(go.Scatter(x=cur["retention"], y=cur["margin"], mode="markers+text", name="current strategy",
                                 text=["current strategy"], textposition="top left",
                                 marker={"size": 14, "color": "#c62828", "symbol": "star"}))
    fig.update_layout(title=title, height=420, xaxis_title="expected retention (Σ p × retention effect × CLV)",
                      yaxis_title="expected margin (Σ p × net margin)",
                      margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 40})
    return fig


def intervals(df: pd.DataFrame, value: str, low: str, high: str, label: str, reference: float | None = None,
              title: str | None = None) -> go.Figure:
    """Point estimates with their confidence intervals, one row per ``label`` (OPE results, lifts)."""
    fig = go.Figure(go.Scatter(
        x=df[value], y=df[label], mode="markers", marker={"size": 10, "color": "#1565c0"},
        error_x={"type": "data", "symmetric": False, "array": df[high] - df[value], "arrayminus": df[value] - df[low],
                 "color": "#1565c0", "thickness": 2},
        hovertemplate="%{y}: %{x:.4g}<extra></extra>",
    ))
    if reference is not None:
        fig.add_vline(x=reference, line={"dash": "dash", "color": "#c62828"})
    fig.update_layout(title=title, height=max(240, 40 * len(df) + 100), yaxis={"autorange": "reversed"},
                      margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 40})
    return fig
