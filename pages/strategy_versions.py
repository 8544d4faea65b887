"""Strategy versions: the lifecycle on the record — what decides now, the timeline, the
approval trail, a field-by-field diff, the stored simulation, the measured effect (before
against after, canary against the rest) and what a customer is told."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis import lifecycle as L
from decision_log import lifecycle
from decisioning.errors import KlartextError
from explain import i18n
from pages.common import fmt, lang, log, md, tr

st.title(tr("lifecycle.page.title"))
st.caption(tr("lifecycle.page.caption"))
lg = log()
if lg is None:
    st.stop()
num, pct = fmt()
lg_lang = lang()
with lg.register(read_only=True) as reg:
    state = lifecycle.state(reg)
    problem = reg.verify() if reg is not None else None


def t(key: str, **values) -> str:
    return tr("lifecycle." + key, **values)


def name(v: str | None) -> str:
    if v is None:
        return "—"
    try:
        return f"{lifecycle.strategy_of(lg, state, v).name} ({v[:8]})"
    except KlartextError:
        return v[:8]


if problem is not None:
    st.error(t("page.sealed_bad", problem=f"{problem.table}: {problem.problem}"), icon=":material/gpp_bad:")
if not state.managed:
    st.info(t("page.unmanaged"), icon=":material/info:")
    versions = L.versions_by_day(lg)["version"].unique().tolist()
else:
    if problem is None:
        st.success(t("page.sealed_ok"), icon=":material/verified_user:")
    versions = state.versions()
    c1, c2, c3 = st.columns(3)
    c1.metric(t("page.now"), name(state.champion), help=state.champion)
    c2.metric(t("page.canary"), f"{name(state.canary)} · {pct(state.share, 0)}" if state.canary
              else t("page.canary_none"), help=state.canary)
    c3.metric(t("page.steps"), num(len(state.steps)))

# -- timeline: decisions per day and version, with the steps marked ------------------------------
st.subheader(t("page.timeline"))
by_day = L.versions_by_day(lg)
if len(by_day):
    fig = go.Figure()
    for v, g in by_day.groupby("version", sort=False):
        fig.add_bar(x=g["day"], y=g["decisions"], name=name(v))
    for s in state.steps:
        if s.step in ("activated", "rolled_back", "approved"):
            label = t("step." + s.step) + (f" {pct(s.share, 0)}" if s.step == "activated" and s.share else "")
            fig.add_vline(x=pd.Timestamp(s.ts).tz_convert(None).floor("D").value / 1e6, line_dash="dot",
                          line_color="#b45309" if s.step == "rolled_back" else "#15803d" if s.step == "activated"
                          else "#6b7280")
            fig.add_annotation(x=pd.Timestamp(s.ts).tz_convert(None).floor("D"), y=1, yref="paper", text=label,
                               showarrow=False, yanchor="bottom", font={"size": 11})
    fig.update_layout(barmode="stack", height=340, margin={"t": 40, "b": 10}, yaxis_title=t("page.timeline_y"),
                      legend={"orientation": "h", "y": -0.2})
    st.plotly_chart(fig, width="stretch", key="sv_timeline")

# -- the approval trail -----------------------------------------------------------------------------
if state.managed:
    st.subheader(t("page.trail"))
    st.dataframe(pd.DataFrame([{
        t("col.when"): f"{s.ts:%Y-%m-%d %H:%M:%S}", t("col.step"): t("step." + s.step),
        t("col.version"): name(s.version), t("col.who"): s.actor,
        t("col.share"): pct(s.share, 0) if s.step == "activated" and s.share is not None else "",
        t("col.against"): (s.base_version or "")[:8], t("col.note"): s.note or ""} for s in state.steps]),
        hide_index=True, width="stretch")
    st.subheader(t("page.versions"))
    st.dataframe(pd.DataFrame([{t("col.version"): name(v), t("col.status"): t("status." + state.status(v))}
                               for v in versions]), hide_index=True, width="stretch")

# -- diff between two versions ---------------------------------------------------------------------
if len(versions) >= 2:
    st.subheader(t("page.diff"))
    newest = [v for v in versions if v != state.champion]
    d1, d2 = st.columns(2)
    old = d1.selectbox(t("page.diff_from"), versions, index=versions.index(state.champion)
                       if state.champion in versions else 0, format_func=name, key="sv_from")
    new = d2.selectbox(t("page.diff_to"), versions, index=versions.index(newest[-1]) if newest else len(versions) - 1,
                       format_func=name, key="sv_to")
    rows = L.diff(lg, state, old, new)
    if rows:
        st.dataframe(pd.DataFrame([{t("col.kind"): r["kind"], t("col.field"): r["field"],
                                    t("col.before"): "—" if r["before"] is None else str(r["before"]),
                                    t("col.after"): "—" if r["after"] is None else str(r["after"])} for r in rows]),
                     hide_index=True, width="stretch")
    else:
        st.caption(tr("lifecycle.cli.no_changes"))

    # -- the simulation stored with the proposal --------------------------------------------------
    if new in state.texts:
        st.subheader(t("page.simulation"))
        sim = state.simulation(new)
        if sim is None or not sim.detail or "kpis" not in sim.detail:
            st.caption(t("page.no_simulation", short=new[:8]))
        else:
            s = sim.detail
            st.markdown(md(t("page.sim_head", n=num(s["decisions"]), base=name(s["champion"]), first=s["first"][:10],
                             last=s["last"][:10], changed=pct(s["changed"], 1))))
            k_now, k_new = s["kpis"]["champion"], s["kpis"]["proposal"]
            st.dataframe(pd.DataFrame([{t("col.kpi"): tr(f"kpi.{k}") if f"kpi.{k}" in i18n.TEXT else k,
                                        t("col.now"): num(k_now[k], 1),
                t("col.proposal"): num(k_new[k], 1)} for k in k_now]), hide_index=True, width="stretch")
            ope = []
            for reward, r in s.get("off_policy", {}).items():
                if "refused" in r:
                    ope.append({t("col.reward"): t("reward." + reward), t("col.now"): "—",
                                t("col.estimate"): r["refused"], t("col.support"): "—"})
                    continue
                e = r["estimates"].get("snips") or next(iter(r["estimates"].values()))
                est = f"{num(e['value'], 3)} ({num(e['ci_low'], 3)} – {num(e['ci_high'], 3)})"
                ope.append({t("col.reward"): t("reward." + reward), t("col.now"): num(r["logging_policy_value"], 3),
                            t("col.estimate"): est if r["reliable"] else f"⚠ {t('page.unreliable')}: {est}",
                            t("col.support"): pct(r["supported"], 1)})
            if ope:
                st.dataframe(pd.DataFrame(ope), hide_index=True, width="stretch")
            for r in s.get("off_policy", {}).values():
                if r.get("warning"):
                    st.warning(r["warning"], icon=":material/warning:")
            if s.get("off_policy_note"):
                st.warning(s["off_policy_note"], icon=":material/warning:")

# -- measured effect --------------------------------------------------------------------------------
if state.managed:
    st.subheader(t("page.effects"))
    eff = L.effects(lg, state)
    if not eff:
        st.caption(t("page.effects_none"))

    def effect_table(rows: list[dict]) -> pd.DataFrame:
        out = []
        for m in rows:
            if m["difference"] is None:
                out.append({t("col.metric"): t("metric." + m["metric"]), t("col.reference"): "—",
                            t("col.value"): "—", t("col.difference"): m.get("note", "—")})
                continue
            share = m["metric"] in ("offered", "accepted")
            f = (lambda x: pct(x, 1)) if share else (lambda x: num(x, 2))
            out.append({t("col.metric"): t("metric." + m["metric"]), t("col.reference"): f(m["reference"]),
                        t("col.value"): f(m["value"]),
                        t("col.difference"): f"{'+' if m['difference'] >= 0 else ''}{f(m['difference'])} "
                                             f"({f(m['low'])} – {f(m['high'])})"})
        return pd.DataFrame(out)

    for i, e in enumerate(eff):
        if "canary" in e:
            st.markdown(md(t("page.canary_effect", from_=e["from"][:16].replace("T", " "),
                             to=e["to"][:16].replace("T", " "), canary=num(e["decisions_canary"]),
                             version=name(e["version"]), rest=num(e["decisions_rest"]),
                             share=pct(e["observed_share"] or 0, 1))))
            st.dataframe(effect_table(e["canary"]), hide_index=True, width="stretch", key=f"sv_canary_{i}")
        if "before_after" in e:
            st.markdown(md(t("page.before_after", step=t("step." + e["step"]), version=name(e["version"]),
                             when=e["from"][:16].replace("T", " "), before=num(e["decisions_before"]),
                             after=num(e["decisions_after"]))))
            st.dataframe(effect_table(e["before_after"]), hide_index=True, width="stretch", key=f"sv_ba_{i}")

# -- what a customer is told ------------------------------------------------------------------------
shown = state.champion if state.managed else (versions[-1] if versions else None)
if shown is not None:
    s = lifecycle.strategy_of(lg, state, shown)
    if s.disclosure.declared:
        st.subheader(t("page.disclosure"))
        st.caption(t("page.disclosure_caption"))
        items = [(f.label, f.name) for f in s.features] + [(w.description, w.name) for w in s.context_weights] + [
            ("Levers", "levers")]
        st.dataframe(pd.DataFrame([{t("col.item"): label, t("col.field"): n,
                                    t("col.disclosed"): "✓ " + t("yes") if s.disclosure.allows(n) else t("no")}
                                   for label, n in items]), hide_index=True, width="stretch")
