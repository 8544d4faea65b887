"""The governance report as a page a board can circulate: HTML (self-contained, no scripts,
figures as inline SVG) and PDF (WeasyPrint, the same HTML), in English or German.

The figures are the dashboard's plotly figures (:func:`figures`), turned into static SVG by
Kaleido in headless Chromium; the numbers come from :func:`analysis.governance.build`.  Every
sentence of the summary is derived from a figure of the report.
"""

from __future__ import annotations

import html
import json
import math
import time
from contextlib import contextmanager
from datetime import date, datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from decisioning.errors import KlartextError
from explain import i18n
from explain.figures import date_axis

_CSS = """
@page { size: A4; margin: 15mm 13mm; @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; } }
body { font-family: "DejaVu Sans", system-ui, sans-serif; font-size: 9.5pt; color: #1d2327; margin: 0 auto;
       max-width: 190mm; }
h1 { font-size: 17pt; margin: 0 0 4pt; } h2 { font-size: 12.5pt; margin: 16pt 0 5pt; border-bottom: 1px solid #bbb;
     break-after: avoid; } h3 { font-size: 10.5pt; margin: 10pt 0 3pt; break-after: avoid; }
.meta { color: #555; } .ok { color: #1b5e20; } .bad { color: #b71c1c; font-weight: bold; } .warn { color: #8a5a00; }
.summary { border-left: 4px solid #1565c0; background: #f3f7fc; padding: 6pt 10pt; margin: 6pt 0; }
.attention { border-left: 4px solid #b71c1c; background: #fdf3f3; padding: 6pt 10pt; margin: 6pt 0; }
.calm { border-left: 4px solid #2e7d32; background: #f2f8f2; padding: 6pt 10pt; margin: 6pt 0; }
table { border-collapse: collapse; width: 100%; margin: 4pt 0; font-size: 8pt; table-layout: fixed; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 2pt 3pt; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; hyphens: auto; }
th { background: #f4f4f4; } tr { break-inside: avoid; } td.num, th.num { text-align: right; }
figure { margin: 6pt 0; break-inside: avoid; } figure svg { width: 100%; height: auto; }
figcaption { color: #555; font-size: 8.5pt; } code { font-size: 8pt; overflow-wrap: anywhere; }
dl dt { font-weight: bold; margin-top: 4pt; } dl dd { margin: 0 0 0 10pt; }
"""

METRICS = ("offer_rate", "incentive_rate", "incentive_value", "premium_rate", "acceptance_rate")


def _esc(x: object) -> str:
    return html.escape("—" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x))


def _bad(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


class Fmt:
    def __init__(self, lang: str, currency: str) -> None:
        self.lang, self.cur = lang, currency

    def n(self, x, d: int = 0) -> str:
        return "—" if _bad(x) else i18n.number(float(x), self.lang, d)

    def pct(self, x, d: int = 1) -> str:
        return "—" if _bad(x) else i18n.percent(float(x), self.lang, d)

    def money(self, x, d: int = 0) -> str:
        return "—" if _bad(x) else f"{i18n.number(float(x), self.lang, d)} {self.cur}"

    def x(self, x, d: int = 2) -> str:
        return "—" if _bad(x) else i18n.number(float(x), self.lang, d)

    def value(self, x, money: bool) -> str:
        """An amount (2 decimals, currency) or a share (a percentage)."""
        return self.money(x, 2) if money else self.pct(x)

    def delta(self, x, money: bool) -> str:
        """A difference of amounts, or of shares in percentage points."""
        return self.money(x, 2) if money else self.change(x, 0, "pp")

    def change(self, cur, prev, kind: str = "rel") -> str:
        """+12.3% (relative) or +1.2 pp (a share's change in percentage points)."""
        if _bad(cur) or _bad(prev):
            return "—"
        if kind == "pp":
            v = (cur - prev) * 100
            return ("+" if v >= 0 else "−") + i18n.number(abs(v), self.lang, 1) + (" Pp." if self.lang == "de" else " pp")
        if not prev:
            return "—"
        v = (cur - prev) / abs(prev)
        return ("+" if v >= 0 else "−") + i18n.percent(abs(v), self.lang, 1)


def t(key: str, lang: str, **kw) -> str:
    return i18n.t("report." + key, lang, **kw)


# -- figures (also the dashboard's) -----------------------------------------------------------------


def _layout(fig: go.Figure, title: str, lang: str, height: int = 300) -> go.Figure:
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=height, width=760,
                      separators=",." if lang == "de" else ".,",
                      margin=dict(l=60, r=20, t=40, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=-0.2), font=dict(family="DejaVu Sans, sans-serif", size=11))
    return fig


def figures(rep: dict, lang: str) -> dict[str, go.Figure]:
    """The report's figures: daily, frontier, models, inputs and one per fairness attribute."""
    out: dict[str, go.Figure] = {}
    daily = rep["daily"]
    if daily:
        days = [d["day"][:10] for d in daily]
        fig = go.Figure()
        fig.add_bar(x=days, y=[d["decisions"] for d in daily], name=t("fig.decisions", lang), marker_color="#90a4ae")
        fig.add_scatter(x=days, y=[(d["accepted"] / d["with_outcome"]) if d["with_outcome"] else None for d in daily],
                        name=t("fig.acceptance", lang), yaxis="y2", mode="lines+markers", line=dict(color="#1565c0"))
        fig.update_layout(yaxis=dict(title=t("fig.decisions", lang)),
                          yaxis2=dict(title=t("fig.acceptance", lang), overlaying="y", side="right",
                                      tickformat=".0%", rangemode="tozero"))
        date_axis(fig, lang)
        out["daily"] = _layout(fig, t("fig.daily", lang), lang)
    fr = rep.get("frontier")
    if fr:
        pts = fr["points"]
        fig = go.Figure()
        fig.add_scatter(x=[p["margin"] for p in pts], y=[p["retention"] for p in pts], mode="lines+markers",
                        name=t("fig.frontier", lang), line=dict(color="#90a4ae"),
                        text=[f"λ={p['lambda']:.1f}" for p in pts])
        cur = next(p for p in pts if p["current"])
        fig.add_scatter(x=[cur["margin"]], y=[cur["retention"]], mode="markers+text", name=t("fig.current", lang),
                        marker=dict(size=13, color="#1565c0"), text=[fr["version"][:8]], textposition="top center")
        for pos in rep.get("positions", []):
            fig.add_scatter(x=[pos["margin"]], y=[pos["retention"]], mode="markers+text",
                            name=t("fig.earlier", lang), marker=dict(size=11, color="#ef6c00", symbol="diamond"),
                            text=[pos["version"][:8]], textposition="bottom center")
        cur_sym = rep["strategy"]["currency"]
        fig.update_layout(xaxis=dict(title=t("fig.margin_axis", lang, currency=cur_sym)),
                          yaxis=dict(title=t("fig.retention_axis", lang, currency=cur_sym)))
        out["frontier"] = _layout(fig, t("fig.frontier_title", lang), lang)
    models = [m for m in rep["models"] if m.get("auc") is not None]
    if models:
        lo, hi = rep["thresholds"]["auc"]
        fig = go.Figure()
        names = [m["action_id"] for m in models]
        fig.add_scatter(x=[m["auc_train"] for m in models], y=names, mode="markers", name=t("fig.auc_train", lang),
                        marker=dict(symbol="line-ns-open", size=14, color="#555"))
        fig.add_scatter(x=[m["auc"] for m in models], y=names, mode="markers", name=t("fig.auc_period", lang),
                        marker=dict(size=8, color=["#b71c1c" if m["flags"] else "#1565c0" for m in models]),
                        error_x=dict(type="data", symmetric=False, array=[m["auc_high"] - m["auc"] for m in models],
                                     arrayminus=[m["auc"] - m["auc_low"] for m in models], thickness=1))
        fig.add_vrect(x0=lo, x1=hi, fillcolor="#2e7d32", opacity=0.07, line_width=0)
        fig.update_layout(xaxis=dict(title="AUC", range=[0.3, 1.0]), yaxis=dict(autorange="reversed"))
        out["models"] = _layout(fig, t("fig.models", lang, lo=i18n.number(lo, lang, 2), hi=i18n.number(hi, lang, 2)),
                                lang, height=max(260, 16 * len(models) + 90))
    inputs = rep["inputs"][:15]
    if inputs:
        warn, alert = rep["thresholds"]["psi"]
        fig = go.Figure(go.Bar(
            x=[r["psi"] for r in inputs], y=[r["label"] for r in inputs], orientation="h",
            marker_color=["#b71c1c" if r["band"] == "alert" else "#ef6c00" if r["band"] == "watch" else "#90a4ae"
                          for r in inputs]))
        for v in (warn, alert):
            fig.add_vline(x=v, line_dash="dot", line_color="#555")
        fig.update_layout(xaxis=dict(title="PSI", type="log"), yaxis=dict(autorange="reversed"))
        out["inputs"] = _layout(fig, t("fig.inputs", lang), lang, height=max(260, 18 * len(inputs) + 90))
    for fa in rep["fairness"]:
        groups = [g for g in fa["groups"] if g.get("incentive_rate") is not None]
        if not groups:
            continue
        fig = go.Figure()
        for metric, color in (("offer_rate", "#90a4ae"), ("incentive_rate", "#1565c0"), ("premium_rate", "#ef6c00"),
                              ("acceptance_rate", "#2e7d32")):
            fig.add_bar(x=[g["group"] for g in groups], y=[g.get(metric) for g in groups],
                        name=t(f"metric.{metric}", lang), marker_color=color)
        fig.update_layout(barmode="group", yaxis=dict(tickformat=".0%"))
        out[f"fairness.{fa['attribute']}"] = _layout(fig, t("fig.fairness", lang, attribute=fa["label"]), lang, height=280)
    return out


def model_figures(detail: dict, lang: str) -> dict[str, go.Figure]:
    """The Model health page's figures of one model: calibration, accepted per day, score distribution."""
    out = {}
    cal = detail["calibration"]
    if cal:
        fig = go.Figure()
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"), showlegend=False)
        fig.add_scatter(x=[c["predicted"] for c in cal], y=[c["observed"] for c in cal], mode="lines+markers",
                        marker=dict(size=[6 + 14 * c["n"] / max(x["n"] for x in cal) for c in cal]),
                        name=t("fig.observed", lang), text=[str(c["n"]) for c in cal])
        fig.update_layout(xaxis=dict(title=t("fig.predicted", lang), tickformat=".0%"),
                          yaxis=dict(title=t("fig.observed", lang), tickformat=".0%"))
        out["calibration"] = _layout(fig, t("fig.calibration", lang), lang)
    per = detail["per_day"]
    if len(per):
        fig = go.Figure(go.Bar(x=per["day"], y=per["accepted"], marker_color="#2e7d32", name=t("fig.accepted", lang)))
        out["per_day"] = _layout(date_axis(fig, lang), t("fig.per_day", lang), lang, height=260)
    sc = detail["scores"]
    edges = sc["edges"]
    labels = [f"≤ {edges[0]:.2f}"] + [f"{a:.2f}–{b:.2f}" for a, b in zip(edges, edges[1:])] + [f"> {edges[-1]:.2f}"] \
        if edges else [t("fig.all", lang)]
    fig = go.Figure()
    for key, color in (("training", "#90a4ae"), ("previous", "#ef6c00"), ("period", "#1565c0")):
        if sc.get(key) is not None:
            fig.add_bar(x=labels, y=sc[key][:len(labels)], name=t(f"fig.scores_{key}", lang), marker_color=color)
    fig.update_layout(barmode="group", yaxis=dict(tickformat=".0%"))
    out["scores"] = _layout(fig, t("fig.scores", lang), lang, height=280)
    return out


@contextmanager
def figure_server():
    """Kaleido's headless Chromium, started for a ``with`` block: start it before the figures'
    numbers are computed and its start-up (~2 s) overlaps with that work."""
    try:
        import kaleido
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise KlartextError("Kaleido is not installed, so the report's figures cannot be drawn.",
                            "pip install kaleido (it comes with Klartext).") from exc
    try:
        kaleido.start_sync_server(silence_warnings=True)
    except Exception as exc:  # noqa: BLE001 - Kaleido reports a missing browser in several ways
        raise _no_browser(exc) from exc
    try:
        yield
    finally:
        kaleido.stop_sync_server(silence_warnings=True)


def _no_browser(exc: Exception) -> KlartextError:
    return KlartextError(f"The report's figures could not be drawn: {type(exc).__name__}: {str(exc)[:200]}",
                         "Kaleido needs Chromium or Chrome: install Debian's chromium (apt-get install chromium) or "
                         "run `kaleido_get_chrome`; the report's JSON (--out FILE.json) needs no browser.")


def svgs(figs: dict[str, go.Figure]) -> dict[str, str]:
    """Each figure as inline SVG (Kaleido drives headless Chromium: one browser for all; inside
    :func:`figure_server` the running one)."""
    import kaleido

    if not kaleido._global_server.is_running():
        with figure_server():
            return svgs(figs)
    out = {}

    def draw(fig: go.Figure):
        return kaleido.calc_fig_sync(fig, opts={"format": "svg", "width": fig.layout.width,
                                                "height": fig.layout.height})
    try:
        for key, fig in figs.items():
            try:
                svg = draw(fig)
            except Exception as exc:  # noqa: BLE001
                # on a busy machine Kaleido's page may not have loaded its script yet when the
                # first figure comes ("kaleido_scopes is not defined"): wait, and try once more
                if "is not defined" not in str(exc):
                    raise
                time.sleep(1.0)
                svg = draw(fig)
            text = svg.decode("utf-8") if isinstance(svg, bytes) else str(svg)
            out[key] = text[text.find("<svg"):]
    except Exception as exc:  # noqa: BLE001
        raise _no_browser(exc) from exc
    return out


# -- the page ---------------------------------------------------------------------------------------


def _table(head: list[str], rows: list[list[str]], num: set[int] | None = None) -> str:
    num = num or set()
    th = "".join(f"<th class='num'>{h}</th>" if i in num else f"<th>{h}</th>" for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f"<td class='num'>{c}</td>" if i in num else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def attention_text(item: dict, lang: str, f: Fmt) -> str:
    """One item of "what needs attention" as a sentence."""
    k = item["kind"]
    if k == "integrity":
        return t("att.integrity", lang, problem=_esc(item["problem"]))
    if k == "contact_limit":
        return t("att.contact_limit", lang, n=f.n(item["breaches"]), channel=_esc(item["channel"]),
                 limit=item["limit"], days=item["period_days"])
    if k == "objection":
        return t("att.objection", lang, n=f.n(item["violations"]))
    if k == "rule":
        return t("att.rule", lang, n=f.n(item["violations"]), rule=_esc(item["rule"]))
    if k == "fairness":
        return t("att.fairness", lang, metric=t(f"metric.{item['metric']}", lang), attribute=_esc(item["label"]),
                 lowest=_esc(item["lowest"]), highest=_esc(item["highest"]), ratio=f.x(item["ratio"]),
                 high=f.x(item["ratio_high"]))
    if k == "input_drift":
        return t("att.input_drift", lang, label=_esc(item["label"]), psi=f.x(item["psi"]),
                 before=f.x(item.get("mean_previous")), after=f.x(item.get("mean")))
    if k == "score_drift":
        text = t("att.score_drift", lang, name=_esc(item["name"]), psi=f.x(item["value"]))
        if item.get("inputs"):
            text += " " + t("att.score_cause", lang, inputs=_esc(", ".join(item["inputs"])))
        return text
    if k in ("auc_low", "auc_high"):
        return t(f"att.{k}", lang, name=_esc(item["name"]), auc=f.x(item["value"]), low=f.x(item["low"]),
                 high=f.x(item["high"]), band=f"{f.x(item['band'][0])}–{f.x(item['band'][1])}")
    return _esc(k)  # pragma: no cover - every kind above


def summary(rep: dict, lang: str) -> list[str]:
    """The executive summary: sentences derived from the figures."""
    f = Fmt(lang, rep["strategy"]["currency"])
    cur, prev = rep["kpis"]["current"], rep["kpis"]["previous"]
    out = []
    if prev and prev.get("decisions"):
        out.append(t("sum.decisions_vs", lang, n=f.n(cur["decisions"]), change=f.change(cur["decisions"],
                                                                                          prev["decisions"]),
                     customers=f.n(cur["customers"])))
        out.append(t("sum.acceptance_vs", lang, rate=f.pct(cur["acceptance_rate"]), before=f.pct(prev["acceptance_rate"]),
                     change=f.change(cur["acceptance_rate"], prev["acceptance_rate"], "pp")))
        out.append(t("sum.margin_vs", lang, margin=f.money(cur["margin"]), change=f.change(cur["margin"], prev["margin"]),
                     spend=f.money(cur["incentive_spend"]),
                     spend_change=f.change(cur["incentive_spend"], prev["incentive_spend"])))
    else:
        out.append(t("sum.decisions", lang, n=f.n(cur["decisions"]), customers=f.n(cur["customers"])))
        out.append(t("sum.acceptance", lang, rate=f.pct(cur["acceptance_rate"])))
        out.append(t("sum.margin", lang, margin=f.money(cur["margin"]), spend=f.money(cur["incentive_spend"])))
    if cur.get("churn_reached") is not None and cur.get("churn_not_reached") is not None:
        out.append(t("sum.churn", lang, reached=f.pct(cur["churn_reached"]), not_reached=f.pct(cur["churn_not_reached"])))
    for ch in rep["changes"]:
        fields = ", ".join(c["field"] for c in ch["changes"][:4]) or t("sum.no_fields", lang)
        out.append(t("sum.change", lang, version=ch["version"][:8], date=ch["first"][:10], fields=_esc(fields)))
    n = len(rep["attention"])
    out.append(t("sum.attention", lang, n=n) if n else t("sum.calm", lang))
    if not rep["integrity"]["ok"]:
        out.append(t("sum.integrity_bad", lang))
    return out


def to_html(rep: dict, lang: str = "en", svg: dict[str, str] | None = None) -> str:
    """The report as one HTML page (``svg``: the figures from :func:`svgs`; without them the
    page has the tables only)."""
    svg = svg or {}
    f = Fmt(lang, rep["strategy"]["currency"])
    per, cmp_ = rep["period"], rep["compare"]
    p: list[str] = [f"<!DOCTYPE html><html lang='{lang}'><head><meta charset='utf-8'>"
                    f"<title>{t('title', lang)} {per['from']} – {per['to']}</title><style>{_CSS}</style></head><body>"]
    p.append(f"<h1>{t('title', lang)}</h1>")
    p.append(f"<p class='meta'>{t('meta', lang, name=_esc(rep['strategy']['name']), start=per['from'], end=per['to'], days=per['days'], log=_esc(rep['log']), at=rep['generated'])}"
             + (f"<br>{t('meta_compare', lang, start=cmp_['from'], end=cmp_['to'])}" if cmp_ else "") + "</p>")

    def fig(key: str, caption: str = "") -> None:
        if key in svg:
            p.append(f"<figure>{svg[key]}" + (f"<figcaption>{caption}</figcaption>" if caption else "") + "</figure>")

    # 1 summary and attention
    p.append(f"<h2>1. {t('h.summary', lang)}</h2><div class='summary'><ul>"
             + "".join(f"<li>{s}</li>" for s in summary(rep, lang)) + "</ul></div>")
    if rep["attention"]:
        p.append(f"<div class='attention'><b>{t('h.attention', lang, n=len(rep['attention']))}</b><ol>"
                 + "".join(f"<li>{attention_text(a, lang, f)}</li>" for a in rep["attention"]) + "</ol></div>")
    else:
        p.append(f"<div class='calm'>{t('calm', lang)}</div>")
    # 2 figures of the period
    p.append(f"<h2>2. {t('h.figures', lang)}</h2>")
    cur, prev = rep["kpis"]["current"], rep["kpis"]["previous"] or {}
    rows = []
    for key, kind in (("decisions", "n"), ("customers", "n"), ("with_action", "n"), ("offer_rate", "pct"),
                      ("reached", "n"), ("contacts", "n"), ("accepted", "n"), ("acceptance_rate", "pct"),
                      ("revenue", "money"), ("margin", "money"), ("margin_per_decision", "money2"),
                      ("incentive_spend", "money"), ("churn_reached", "pct"), ("churn_not_reached", "pct")):
        fmt = {"n": f.n, "pct": f.pct, "money": f.money, "money2": lambda x: f.money(x, 2)}[kind]
        rows.append([t(f"kpi.{key}", lang), fmt(cur.get(key)), fmt(prev.get(key)) if prev else "—",
                     f.change(cur.get(key), prev.get(key), "pp" if kind == "pct" else "rel") if prev else "—"])
    p.append(_table([t("col.figure", lang), t("col.period", lang), t("col.previous", lang), t("col.change", lang)],
                    rows, {1, 2, 3}))
    fig("daily")
    for by in ("issue", "channel"):
        p.append(f"<h3>{t('h.by_' + by, lang)}</h3>")
        rws = []
        for r in rep[f"by_{by}"]:
            pr = r.get("previous") or {}
            rws.append([_esc(r["key"]), f.n(r["contacts"]), f.n(pr.get("contacts")), f.pct(r["acceptance_rate"]),
                        f.pct(pr.get("acceptance_rate")), f.money(r["margin"]), f.money(pr.get("margin")),
                        f.money(r["incentive_spend"])])
        p.append(_table([t("col." + by, lang), t("col.contacts", lang), t("col.prev_short", lang),
                         t("col.acceptance", lang), t("col.prev_short", lang), t("col.margin", lang),
                         t("col.prev_short", lang), t("col.incentives", lang)], rws, set(range(1, 8))))
    # 3 margin vs retention
    p.append(f"<h2>3. {t('h.frontier', lang)}</h2>")
    fr = rep.get("frontier")
    if fr:
        cur_pt = next(x for x in fr["points"] if x["current"])
        p.append(f"<p>{t('frontier.text', lang, version=fr['version'][:8], n=f.n(fr['decisions']), margin=f.money(cur_pt['margin'], 2), retention=f.money(cur_pt['retention'], 2), mw=f.x(fr['margin_weight']), rw=f.x(fr['retention_weight']))} "
                 + (t("frontier.on", lang) if cur_pt["efficient"] else t("frontier.inside", lang)) + "</p>")
        for pos in rep.get("positions", []):
            p.append(f"<p>{t('frontier.earlier', lang, version=pos['version'][:8], margin=f.money(pos['margin'], 2), retention=f.money(pos['retention'], 2))}</p>")
        fig("frontier", t("frontier.caption", lang))
    else:
        p.append(f"<p>{t('frontier.none', lang)}</p>")
    # 4 strategy changes
    p.append(f"<h2>4. {t('h.changes', lang)}</h2>")
    if not rep["changes"]:
        p.append(f"<p>{t('changes.none', lang)}</p>")
    for ch in rep["changes"]:
        p.append(f"<h3>{t('changes.version', lang, version=ch['version'], previous=ch['previous'], date=ch['first'][:16].replace('T', ' '))}</h3>")
        p.append(_table([t("col.kind", lang), t("col.field", lang), t("col.before", lang), t("col.after", lang)],
                        [[_esc(c["kind"]), f"<code>{_esc(c['field'])}</code>", f"<code>{_esc(c['before'])}</code>",
                          f"<code>{_esc(c['after'])}</code>"] for c in ch["changes"]]))
        rws = []
        for e in ch["effect"]:
            money = e["metric"] in ("margin", "incentive", "incentive_offered")
            rws.append([t(f"effect.{e['metric']}", lang), f.value(e["before"], money), f.value(e["after"], money),
                        f.delta(e["difference"], money), f"{f.delta(e['low'], money)} … {f.delta(e['high'], money)}"])
        p.append(f"<p>{t('changes.effect', lang, before=f.n(ch['decisions_before']), after=f.n(ch['decisions_after']))}</p>")
        p.append(_table([t("col.figure", lang), t("col.before", lang), t("col.after", lang), t("col.difference", lang),
                         t("col.ci", lang)], rws, {1, 2, 3, 4}))
        if "canary" in ch:  # a canary: the new version beside the rest over the same days
            c = ch["canary"]
            p.append(f"<p>{t('changes.canary', lang, canary=f.n(c['decisions_canary']), rest=f.n(c['decisions_rest']), share=f.pct(c['share']))}</p>")
            p.append(_table([t("col.figure", lang), t("col.rest", lang), t("col.canary", lang),
                             t("col.difference", lang), t("col.ci", lang)], [
                [t(f"effect.{e['metric']}", lang), f.value(e["before"], m), f.value(e["after"], m),
                 f.delta(e["difference"], m), f"{f.delta(e['low'], m)} … {f.delta(e['high'], m)}"]
                for e in c["effect"] for m in [e["metric"] in ("margin", "incentive", "incentive_offered")]],
                {1, 2, 3, 4}))
    # 5 model monitoring
    p.append(f"<h2>5. {t('h.models', lang)}</h2>")
    thr = rep["thresholds"]
    p.append(f"<p>{t('models.text', lang, lo=f.x(thr['auc'][0]), hi=f.x(thr['auc'][1]), warn=f.x(thr['psi'][0]), alert=f.x(thr['psi'][1]))}</p>")
    rws = []
    for m in rep["models"]:
        status = ("<span class='bad'>" + t("status.attention", lang) + "</span>") if m["flags"] else (
            t("status.too_few", lang) if m["auc"] is None else "<span class='ok'>" + t("status.ok", lang) + "</span>")
        rws.append([_esc(m["name"]), f.x(m["auc_train"]),
                    "—" if m["auc"] is None else f"{f.x(m['auc'])} ({f.x(m['auc_low'])}–{f.x(m['auc_high'])})",
                    f"{f.pct(m['mean_predicted'])} / {f.pct(m['observed_rate'])}",
                    f"{f.x(m['ece_train'], 3)} → {f.x(m['ece'], 3)}", f.x(m["positives_per_day"], 1),
                    f.x(m["psi_score_previous"]), f.x(m["psi_score_train"]), status])
    p.append(_table([t("col.model", lang), t("col.auc_train", lang), t("col.auc_period", lang),
                     t("col.pred_obs", lang), t("col.ece", lang), t("col.positives_day", lang),
                     t("col.psi_prev", lang), t("col.psi_train", lang), t("col.status", lang)], rws,
                    {1, 2, 3, 4, 5, 6, 7}))
    fig("models")
    p.append(f"<h3>{t('h.inputs', lang)}</h3>")
    if rep["inputs"]:
        smp = rep["sample"]
        p.append(f"<p>{t('inputs.text', lang, n=f.n(smp['decisions']), of=f.n(smp['of']))}</p>")
        fig("inputs")
        band = {"alert": f"<span class='bad'>{t('band.alert', lang)}</span>",
                "watch": f"<span class='warn'>{t('band.watch', lang)}</span>", "stable": t("band.stable", lang)}
        p.append(_table([t("col.input", lang), "PSI", t("col.band", lang), t("col.mean_prev", lang),
                         t("col.mean", lang)],
                        [[_esc(r["label"]), f.x(r["psi"], 3), band[r["band"]], f.x(r.get("mean_previous")),
                          f.x(r.get("mean"))] for r in rep["inputs"]], {1, 3, 4}))
    else:
        p.append(f"<p>{t('inputs.none', lang)}</p>")
    # 6 policy compliance
    comp = rep["compliance"]
    p.append(f"<h2>6. {t('h.compliance', lang)}</h2>")
    p.append(_table([t("col.channel", lang), t("col.limit", lang), t("col.contacts", lang), t("col.breaches", lang)],
                    [[_esc(c["channel"]), t("limit", lang, n=c["limit"], days=c["period_days"]), f.n(c["contacts"]),
                      (f"<span class='bad'>{f.n(c['breaches'])}</span>" if c["breaches"] else
                       "<span class='ok'>0</span>")] for c in comp["contact_limits"]], {2, 3}))
    ob = comp["objections"]
    p.append(f"<p>{t('objections.text', lang, periods=f.n(ob['periods']), n=f.n(ob['violations']))}</p>")
    rc = comp.get("recheck")
    if rc:
        bound = "" if rc.get("complete") or rc.get("upper_95") is None else " " + t(
            "recheck.bound", lang, per=f.x(rc["upper_95"] * 100_000, 1), of=f.n(rep["sample"]["of"]))
        p.append(f"<p>{t('recheck.text', lang, contacts=f.n(rc['contacts_checked']), decisions=f.n(rc['decisions']), n=f.n(rc['violations']))}{bound}</p>")
        p.append(_table([t("col.rule", lang), t("col.stage", lang), t("col.checked", lang), t("col.violations", lang)],
                        [[f"<code>{_esc(r['rule'])}</code> — {_esc(r['description'])}", _esc(r["stage"]),
                          f.n(r["checked"]), (f"<span class='bad'>{f.n(r['violations'])}</span>" if r["violations"]
                                              else "<span class='ok'>0</span>")] for r in rc["rules"]], {2, 3}))
    suit = [r for r in comp["rules_fired"] if r["stage"] == "suitability"]
    p.append(f"<h3>{t('h.suitability', lang)}</h3>")
    p.append(_table([t("col.rule", lang), t("col.removed", lang), t("col.decisions", lang)],
                    [[f"<code>{_esc(r['rule'])}</code>", f.n(r["candidates"]), f.n(r["decisions"])] for r in suit],
                    {1, 2}) if suit else f"<p>{t('suitability.none', lang)}</p>")
    # 7 fairness
    p.append(f"<h2>7. {t('h.fairness', lang)}</h2>")
    p.append(f"<p>{t('fairness.text', lang, ratio=f.x(thr['min_ratio']), min_group=f.n(thr['min_group']), n=f.n(rep['sample']['decisions']))}</p>")
    if not rep["fairness"]:
        p.append(f"<p>{t('fairness.none', lang)}</p>")
    for fa in rep["fairness"]:
        p.append(f"<h3>{_esc(fa['label'])}</h3>")
        if not fa["flag"]:
            p.append(f"<p class='meta'>{t('fairness.not_flagged', lang, note=_esc(fa['note']))}</p>")
        rws = [[_esc(g["group"]) + ("" if g["judged"] else " *"), f.n(g["decisions"]), f.pct(g.get("offer_rate")),
                f.pct(g.get("incentive_rate")), f.money(g.get("incentive_value"), 2), f.pct(g.get("premium_rate")),
                f.pct(g.get("acceptance_rate"))] for g in fa["groups"]]
        p.append(_table([t("col.group", lang), t("col.decisions", lang)] + [t(f"metric.{m}", lang) for m in METRICS],
                        rws, {1, 2, 3, 4, 5, 6}))
        if any(not g["judged"] for g in fa["groups"]):
            p.append(f"<p class='meta'>* {t('fairness.small', lang, n=f.n(thr['min_group']))}</p>")
        rws = []
        for m in fa["metrics"]:
            flag = (f"<span class='bad'>{t('fairness.flag', lang)}</span>" if m["flagged"] else
                    f"<span class='warn'>{t('fairness.below', lang)}</span>" if m["below_min_ratio"] else
                    t("fairness.fine", lang))
            money = m["metric"] == "incentive_value"
            d = (lambda x, money=money: f.delta(x, money))  # noqa: E731
            rws.append([t(f"metric.{m['metric']}", lang), f"{_esc(m['lowest'])} / {_esc(m['highest'])}",
                        f"{f.x(m['ratio'])} ({f.x(m['ratio_low'])}–{f.x(m['ratio_high'])})",
                        f"{d(m['difference'])} ({d(m['difference_low'])} … {d(m['difference_high'])})", flag])
        p.append(_table([t("col.metric", lang), t("col.low_high", lang), t("col.ratio", lang), t("col.diff", lang),
                         t("col.finding", lang)], rws, {2, 3}))
        fig(f"fairness.{fa['attribute']}")
    # 8 integrity
    integ = rep["integrity"]
    p.append(f"<h2>8. {t('h.integrity', lang)}</h2>")
    if integ["ok"] and integ.get("anchor"):
        a = integ["anchor"]
        p.append(f"<p class='ok'>{t('integrity.since', lang, at0=a['at'][:16].replace('T', ' '), by=_esc(a['by']), n0=f.n(a['decisions']), k=f.n(a['added']), at=integ['checked_at'])}</p>")
    elif integ["ok"]:
        p.append(f"<p class='ok'>{t('integrity.ok', lang, n=f.n(integ['decisions']), at=integ['checked_at'])}</p>")
    else:
        p.append(f"<p class='bad'>{t('integrity.bad', lang, problem=_esc(integ['problem']), decision=_esc(integ['first_bad_decision']))}</p>")
    p.append(f"<p>{t('integrity.head', lang)} <code>{_esc(integ['head'])}</code></p>")
    # appendix
    p.append(f"<h2>{t('h.methods', lang)}</h2><dl>")
    for key in ("period", "acceptance", "margin", "incentive", "churn", "frontier", "changes", "auc", "calibration",
                "ece", "positives", "psi", "psi_train", "contact", "objection", "recheck", "suitability", "fairness",
                "bootstrap", "sample", "integrity"):
        p.append(f"<dt>{t('m.' + key + '.term', lang)}</dt><dd>{t('m.' + key, lang)}</dd>")
    p.append("</dl></body></html>")
    return "\n".join(p)


def to_pdf(rep: dict, lang: str = "en", svg: dict[str, str] | None = None) -> bytes:
    """The report as PDF (WeasyPrint prints the HTML page, figures included)."""
    from weasyprint import HTML

    return HTML(string=to_html(rep, lang, svg)).write_pdf()


def to_json(rep: dict) -> str:
    """The report's figures as JSON (numpy and time values made plain)."""
    def conv(o):
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return None if np.isnan(o) else float(o)
        if isinstance(o, (pd.Timestamp, datetime, date)):
            return o.isoformat()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.bool_):
            return bool(o)
        return str(o)
    return json.dumps(rep, default=conv, ensure_ascii=False, indent=1)




def render(rep: dict, lang: str, fmt: str) -> bytes:
    """The report as ``html``, ``pdf`` or ``json`` bytes, figures drawn for the first two."""
    if fmt == "json":
        return to_json(rep).encode("utf-8")
    svg = svgs(figures(rep, lang))
    return to_html(rep, lang, svg).encode("utf-8") if fmt == "html" else to_pdf(rep, lang, svg)
