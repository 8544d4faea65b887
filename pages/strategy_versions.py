"""Strategy versions: the lifecycle on the record — what decides now, the timeline, the
approval trail, a field-by-field diff, the stored simulation, the measured effect (before
against after, canary against the rest) and what a customer is told."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis import lifecycle as L
from decision_log import lifecycle
from decisioning.errors import KlartextError
from explain import figures, i18n
from pages.common import fmt, lang, log, md, tr

st.title(tr("lifecycle.page.title"))
st.caption(tr("lifecycle.page.caption"))
lg = log()
if lg is None:
    st.stop()
num, pct = fmt()
lg_lang = lang()
with lg.register(read_only=True) as reg:
    state = lifecycle.state(reg, verify=False)  # the whole register is verified here, and shown
    problem = reg.verify() if reg is not None else None


def t(key: str, **values) -> str:
    return tr("lifecycle." + key, **values)


_names: dict[str, str] = {}


def name(v: str | None) -> str:
    """A version as people read it: its strategy's name and short hash (each parsed once)."""
    if v is None:
        return "—"
    if v not in _names:
        try:
            _names[v] = f"{lifecycle.strategy_of(lg, state, v).name} ({v[:8]})"
        except KlartextError:
            _names[v] = v[:8]
    return _names[v]


if problem is not None:
    st.error(t("page.sealed_bad", problem=f"{problem.table}: {problem.problem}"), icon=":material/gpp_bad:")
for bad, why in state.invalid:
    st.error(t("page.invalid", step=t("step." + bad.step), version=bad.version[:8], who=bad.actor,
               when=f"{bad.ts:%Y-%m-%d %H:%M}", why=why), icon=":material/gpp_bad:")
by_time, width = L.timeline(lg, state)  # (without steps: the whole log)
if not state.managed:
    st.info(t("page.unmanaged"), icon=":material/info:")
    versions = by_time["version"].unique().tolist()
else:
    if problem is None and not state.invalid:
        st.success(t("page.sealed_ok"), icon=":material/verified_user:")
    versions = state.versions()
    c1, c2, c3 = st.columns(3)
    c1.metric(t("page.now"), state.champion[:8], help=state.champion)
    c1.caption(name(state.champion))
    c2.metric(t("page.canary"), f"{state.canary[:8]} · {pct(state.share, 0)}" if state.canary
              else t("page.canary_none"), help=state.canary)
    if state.canary:
        c2.caption(name(state.canary))
    c3.metric(t("page.steps"), num(len(state.steps)))
    c3.caption(t("page.since", since=f"{state.since:%Y-%m-%d %H:%M} UTC") if state.since else "")

# -- timeline: decisions per bucket and version, with the steps marked --------------------------
st.subheader(t("page.timeline"))
if len(by_time):
    fig = go.Figure()
    for v, g in by_time.groupby("version", sort=False):
        fig.add_bar(x=g["start"], y=g["decisions"], name=name(v))
    top = float(by_time.groupby("start")["decisions"].sum().max())
    colours = {"proposed": "#6b7280", "simulated": "#6b7280", "approved": "#2563eb", "activated": "#15803d",
               "rolled_back": "#b45309"}
    symbols = {"proposed": "circle-open", "simulated": "diamond-open", "approved": "square", "activated": "triangle-up",
               "rolled_back": "triangle-down"}
    for step in ("proposed", "simulated", "approved", "activated", "rolled_back"):
        mine = [s for s in state.steps if s.step == step]
        if not mine:
            continue
        fig.add_scatter(
            x=[pd.Timestamp(s.ts) for s in mine], y=[top * 1.08] * len(mine), mode="markers", name=t("step." + step),
            marker={"symbol": symbols[step], "size": 12, "color": colours[step]},
            hovertext=[f"{t('step.' + step)} {s.version[:8]}" + (f" · {pct(s.share, 0)}" if step == "activated" else "")
                       + f" · {s.actor}" + (f": {s.note}" if s.note else "") for s in mine], hoverinfo="text+x")
        for s in mine:
            if step in ("activated", "rolled_back"):
                fig.add_vline(x=pd.Timestamp(s.ts).value / 1e6, line_dash="dot", line_color=colours[step])
    figures.date_axis(fig, lg_lang)
    fig.update_layout(barmode="stack", height=360, margin={"t": 20, "b": 10},
                      yaxis_title=t("page.timeline_y", width=t("bucket." + width)),
                      legend={"orientation": "h", "y": -0.25})
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
            for w in dict.fromkeys(r["warning"] for r in s.get("off_policy", {}).values() if r.get("warning")):
                st.warning(w, icon=":material/warning:")  # (one warning for the rewards it concerns)
            if s.get("off_policy_note"):
                st.warning(s["off_policy_note"], icon=":material/warning:")

# -- measured effect --------------------------------------------------------------------------------
if state.managed:
    st.subheader(t("page.effects"))
    eff = L.effects(lg, state)
    currency = lifecycle.strategy_of(lg, state, state.champion).currency
    if not eff:
        st.caption(t("page.effects_none"))

    def effect_table(rows: list[dict], reference: str, value: str) -> pd.DataFrame:
        out = []
        for m in rows:
            if m["difference"] is None:
                out.append({t("col.metric"): t("metric." + m["metric"]), reference: "—", value: "—",
                            t("col.difference"): t("page.no_outcomes")})
                continue
            share = m["metric"] in ("offered", "accepted")
            f = (lambda x: pct(x, 1)) if share else (lambda x: f"{num(x, 2)} {currency}")
            d = ((lambda x: num(x * 100, 1, sign=True) + " " + t("pp")) if share
                 else (lambda x: f"{num(x, 2, sign=True)} {currency}"))
            out.append({t("col.metric"): t("metric." + m["metric"]), reference: f(m["reference"]), value: f(m["value"]),
                        t("col.difference"): f"{d(m['difference'])} ({d(m['low'])} … {d(m['high'])})"})
        return pd.DataFrame(out)

    for i, e in enumerate(eff):
        if "canary" in e:
            st.markdown(md(t("page.canary_effect", from_=e["from"][:16].replace("T", " "),
                             to=e["to"][:16].replace("T", " "), canary=num(e["decisions_canary"]),
                             version=name(e["version"]), rest=num(e["decisions_rest"]),
                             share=pct(e["observed_share"] or 0, 1))))
            st.dataframe(effect_table(e["canary"], t("col.rest"), t("col.canary")), hide_index=True, width="stretch",
                         key=f"sv_canary_{i}")
        if "before_after" in e:
            st.markdown(md(t("page.before_after", step=t("noun." + e["step"]), version=name(e["version"]),
                             when=e["from"][:16].replace("T", " "), before=num(e["decisions_before"]),
                             after=num(e["decisions_after"]))))
            st.dataframe(effect_table(e["before_after"], t("col.before_span"), t("col.after_span")), hide_index=True,
                         width="stretch", key=f"sv_ba_{i}")

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
