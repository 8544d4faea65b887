"""Governance report: the board's report for a period — the same content as `klartext report`
(summary, findings, figures, strategy changes, compliance, integrity), with downloads."""

import pandas as pd
import streamlit as st

from explain import report
from pages.common import governance_page, tr

lg, period, compare, rep, lg_lang, f = governance_page("report.page.title", "report.page.caption")
st.markdown(report.t("meta", lg_lang, name=rep["strategy"]["name"], start=period.start, end=period.end,
                     days=period.days, log=rep["log"], at=rep["generated"]))

c1, c2 = st.columns(2)
for col, kind in ((c1, "pdf"), (c2, "html")):
    key = f"gov_file_{kind}"
    made = st.session_state.get(key)
    if made is not None and made[0] != (period.start, period.end, compare, lg_lang, rep["generated"]):
        made = None
    if made is None:
        if col.button(tr("report.page.prepare", kind=kind.upper()), key=f"gov_prepare_{kind}"):
            with st.spinner(tr("report.page.drawing")):
                data = report.render(rep, lg_lang, kind)
            made = st.session_state[key] = ((period.start, period.end, compare, lg_lang, rep["generated"]), data)
    if made is not None:
        col.download_button(tr("report.page.download_file", kind=kind.upper(), kb=f"{len(made[1]) / 1024:,.0f}"),
                            made[1], f"governance-report-{period.start}-{period.end}.{kind}",
                            "application/pdf" if kind == "pdf" else "text/html", key=f"gov_dl_{kind}")

st.subheader("1. " + report.t("h.summary", lg_lang))
st.info("\n".join(f"- {s}" for s in report.summary(rep, lg_lang)))
if rep["attention"]:
    st.error(f"**{report.t('h.attention', lg_lang, n=len(rep['attention']))}**\n\n"
             + "\n".join(f"{i}. {report.attention_text(a, lg_lang, f)}" for i, a in enumerate(rep["attention"], 1)),
             icon=":material/warning:")
else:
    st.success(report.t("calm", lg_lang), icon=":material/check_circle:")

figs = report.figures(rep, lg_lang)
st.subheader("2. " + report.t("h.figures", lg_lang))
cur, prev = rep["kpis"]["current"], rep["kpis"]["previous"] or {}
rows = []
for key, kind in (("decisions", "n"), ("customers", "n"), ("offer_rate", "pct"), ("reached", "n"), ("contacts", "n"),
                  ("acceptance_rate", "pct"), ("revenue", "money"), ("margin", "money"), ("incentive_spend", "money"),
                  ("churn_reached", "pct"), ("churn_not_reached", "pct")):
    fmt = {"n": f.n, "pct": f.pct, "money": f.money}[kind]
    rows.append({report.t("col.figure", lg_lang): report.t(f"kpi.{key}", lg_lang),
                 report.t("col.period", lg_lang): fmt(cur.get(key)),
                 report.t("col.previous", lg_lang): fmt(prev.get(key)) if prev else "—",
                 report.t("col.change", lg_lang): f.change(cur.get(key), prev.get(key), "pp" if kind == "pct" else "rel")
                 if prev else "—"})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
if "daily" in figs:
    st.plotly_chart(figs["daily"], width="stretch", key="gov_daily")
by = st.radio(report.t("col.figure", lg_lang), ["issue", "channel"], horizontal=True, key="gov_by",
              format_func=lambda b: report.t(f"h.by_{b}", lg_lang))
st.dataframe(pd.DataFrame([{
    report.t(f"col.{by}", lg_lang): r["key"], report.t("col.contacts", lg_lang): r["contacts"],
    report.t("col.acceptance", lg_lang): f.pct(r["acceptance_rate"]),
    report.t("col.margin", lg_lang): f.money(r["margin"]), report.t("col.incentives", lg_lang): f.money(r["incentive_spend"]),
    report.t("col.prev_short", lg_lang) + " " + report.t("col.contacts", lg_lang):
        (r.get("previous") or {}).get("contacts")} for r in rep[f"by_{by}"]]), hide_index=True, width="stretch")

st.subheader("3. " + report.t("h.frontier", lg_lang))
fr = rep.get("frontier")
if fr:
    pt = next(x for x in fr["points"] if x["current"])
    st.markdown(report.t("frontier.text", lg_lang, version=fr["version"][:8], n=f.n(fr["decisions"]),
                         margin=f.money(pt["margin"], 2), retention=f.money(pt["retention"], 2),
                         mw=f.x(fr["margin_weight"]), rw=f.x(fr["retention_weight"])) + " "
                + report.t("frontier.on" if pt["efficient"] else "frontier.inside", lg_lang))
    st.plotly_chart(figs["frontier"], width="stretch", key="gov_frontier")
else:
    st.markdown(report.t("frontier.none", lg_lang))

st.subheader("4. " + report.t("h.changes", lg_lang))
if not rep["changes"]:
    st.markdown(report.t("changes.none", lg_lang))
for ch in rep["changes"]:
    st.markdown("**" + report.t("changes.version", lg_lang, version=ch["version"], previous=ch["previous"],
                                date=ch["first"][:16].replace("T", " ")) + "**")
    st.dataframe(pd.DataFrame(ch["changes"]).astype(str), hide_index=True, width="stretch")
    st.caption(report.t("changes.effect", lg_lang, before=f.n(ch["decisions_before"]), after=f.n(ch["decisions_after"])))
    st.dataframe(pd.DataFrame([{
        report.t("col.figure", lg_lang): report.t(f"effect.{e['metric']}", lg_lang),
        report.t("col.before", lg_lang): f.value(e["before"], e["metric"] in ("margin", "incentive", "incentive_offered")),
        report.t("col.after", lg_lang): f.value(e["after"], e["metric"] in ("margin", "incentive", "incentive_offered")),
        report.t("col.difference", lg_lang): f.delta(e["difference"], e["metric"] in ("margin", "incentive", "incentive_offered")),
        report.t("col.ci", lg_lang): f"{f.delta(e['low'], e['metric'] in ('margin', 'incentive', 'incentive_offered'))} … "
                                     f"{f.delta(e['high'], e['metric'] in ('margin', 'incentive', 'incentive_offered'))}"}
        for e in ch["effect"]]), hide_index=True, width="stretch")

st.subheader("5. " + report.t("h.models", lg_lang))
st.markdown(report.t("models.text", lg_lang, lo=f.x(rep["thresholds"]["auc"][0]), hi=f.x(rep["thresholds"]["auc"][1]),
                     warn=f.x(rep["thresholds"]["psi"][0]), alert=f.x(rep["thresholds"]["psi"][1])))
if "models" in figs:
    st.plotly_chart(figs["models"], width="stretch", key="gov_models")
st.markdown(f":material/monitor_heart: [{tr('report.page.see_models')}](model_health)")

st.subheader("6. " + report.t("h.compliance", lg_lang))
comp = rep["compliance"]
st.dataframe(pd.DataFrame(comp["contact_limits"]), hide_index=True, width="stretch")
st.markdown(report.t("objections.text", lg_lang, periods=f.n(comp["objections"]["periods"]),
                     n=f.n(comp["objections"]["violations"])).replace("<b>", "**").replace("</b>", "**"))
if comp.get("recheck"):
    rc = comp["recheck"]
    st.markdown(report.t("recheck.text", lg_lang, contacts=f.n(rc["contacts_checked"]), decisions=f.n(rc["decisions"]),
                         n=f.n(rc["violations"])).replace("<b>", "**").replace("</b>", "**"))
    st.dataframe(pd.DataFrame(rc["rules"]).drop(columns=["decisions"]), hide_index=True, width="stretch")

st.subheader("7. " + report.t("h.fairness", lg_lang))
for fa in rep["fairness"]:
    found = [m for m in fa["metrics"] if m["flagged"]]
    line = f"**{fa['label']}**: " + (", ".join(report.t(f"metric.{m['metric']}", lg_lang) for m in found)
                                      + " — " + report.t("fairness.flag", lg_lang) if found
                                      else report.t("fairness.fine", lg_lang))
    st.markdown(line)
st.markdown(f":material/diversity_3: [{tr('report.page.see_fairness')}](fairness)")

st.subheader("8. " + report.t("h.integrity", lg_lang))
integ = rep["integrity"]
if integ["ok"] and integ.get("anchor"):
    a = integ["anchor"]
    st.success(report.t("integrity.since", lg_lang, at0=a["at"][:16].replace("T", " "), by=a["by"],
                        n0=f.n(a["decisions"]), k=f.n(a["added"]), at=integ["checked_at"]).replace("`", ""))
elif integ["ok"]:
    st.success(report.t("integrity.ok", lg_lang, n=f.n(integ["decisions"]), at=integ["checked_at"]))
else:
    st.error(report.t("integrity.bad", lg_lang, problem=integ["problem"], decision=integ["first_bad_decision"]))
st.markdown(f"{report.t('integrity.head', lg_lang)} `{integ['head']}`")
with st.expander(report.t("h.methods", lg_lang)):
    for key in ("acceptance", "frontier", "changes", "auc", "psi", "contact", "recheck", "fairness", "bootstrap",
                "sample"):
        st.markdown(f"**{report.t('m.' + key + '.term', lg_lang)}** — {report.t('m.' + key, lg_lang)}")
