import getpass

import streamlit as st

from decision_log import queries
from decision_log.replay import replay
from decisioning.errors import KlartextError
from explain import evidence, figures
from explain.text import why_not_text
from pages.common import (
    action_label,
    catalog,
    current_user,
    explainer,
    filters,
    fmt,
    lang,
    log,
    md,
    record_view,
    require,
    show_error,
    table,
    tr,
)

require("decisions")

st.title(tr("replay.title"))
st.caption(tr("replay.caption"))
lg = log()
if lg is None:
    st.stop()
ex = explainer(lg)
con = lg.con.cursor()
f = filters(con, issues=False)
names, currency = catalog(lg)
number, percent = fmt()
lg_lang = lang()


def named(aid: str) -> str:
    return action_label(names, aid)


if "decision" in st.query_params and "q_id" not in st.session_state:  # a link from Customer history
    st.session_state["q_id"] = st.query_params["decision"]
c1, c2, c3 = st.columns([2, 2, 2])
did_q = c1.text_input(tr("replay.find_id"), key="q_id").strip()
cust_q = c2.text_input(tr("replay.find_customer"), key="q_customer").strip()
action_q = c3.selectbox(tr("replay.find_action"), ["any"] + queries.choices(con)["actions"], key="q_action",
                        format_func=lambda a: tr("replay.any") if a == "any" else named(a))
customer = None
if cust_q:
    known = not queries.find_decisions(con, customer=cust_q, limit=1).empty
    customer = cust_q if known else lg.pseudonymise([cust_q])[0]
found = queries.find_decisions(con, decision_id=did_q or None, customer=customer,
                               action=None if action_q == "any" else action_q, f=f, limit=200)
if found.empty:
    st.warning(tr("replay.no_match", what=", ".join(x for x in (did_q, cust_q) if x) or "—"))
    st.stop()
found["chosen_actions"] = found["chosen_actions"].map(
    lambda a: ", ".join(named(x) for x in a) if len(a) else tr("replay.no_action_dash"))
st.dataframe(found, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="found",
             column_config={
                 "decision_id": st.column_config.TextColumn(tr("col.decision")),
                 "ts": st.column_config.DatetimeColumn(tr("col.time"), format="YYYY-MM-DD HH:mm"),
                 "channel": tr("col.channel"), "customer": tr("col.customer"), "chosen_actions": tr("col.chosen"),
                 "selection_probability": st.column_config.NumberColumn(tr("col.selection_probability"),
                                                                         format="%.3f"),
                 "explored": tr("col.explored")})
picked = st.session_state.get("found", {}).get("selection", {}).get("rows", [])
did = found["decision_id"].iloc[picked[0] if picked and picked[0] < len(found) else 0]

record_view(lg, "decision", did, customer=str(found.loc[found["decision_id"] == did, "customer"].iloc[0]))
try:
    e = ex.explain(did)
except KlartextError as exc:
    show_error(exc)
    st.stop()
d = e.decision
st.header(tr("replay.decision", id=md(did)))
rep = replay(lg, [did])[0]
if e.erased:
    replay_note = tr("erased.banner", date=f"{e.erased_at:%Y-%m-%d}" if e.erased_at is not None
                     else tr("erased.unknown_date"))
    st.info(replay_note, icon=":material/delete_forever:")
elif rep.reproduced:
    replay_note = tr("replay.verified")
    st.success(replay_note, icon=":material/verified:")
elif not rep.replayable:
    replay_note = tr("replay.not_replayable", note=rep.note)
    st.info(replay_note)
else:
    replay_note = tr("replay.failed", n=len(rep.differences), examples=", ".join(
        f"{x.action_id}.{x.field}: {x.logged!r} → {x.replayed!r}" for x in rep.differences[:3]))
    st.error(replay_note)
m = st.columns(3)
channel = d["channel"]
if e.strategy is not None and channel in e.strategy.channel_ids:
    channel = e.strategy.channel(channel).label
m[0].metric(tr("col.channel"), channel, tr(f"direction.{d['direction']}") if d["direction"] in ("inbound", "outbound")
            else d["direction"], delta_color="off")
sp, lat = d["selection_probability"], d["latency_us"]
m[1].metric(tr("col.selection_probability"), "—" if sp is None or sp != sp else percent(sp),
            tr("replay.explored") if d["explored"] else None, delta_color="off", help=tr("replay.selection_help"))
m[2].metric(tr("replay.latency"), "—" if lat is None or lat != lat else f"{number(int(lat))} µs",
            help=tr("replay.latency_help"))
st.markdown(f"**{tr('col.chosen')}:** " + (", ".join(f"{md(named(a))} ({md(a)})" for a in e.chosen)
                                           or tr("replay.no_action")))
st.caption(tr("replay.facts", ts=f"{d['ts']:%Y-%m-%d %H:%M:%S %Z}", customer=d["customer"],
              strategy=d["strategy_version"], source=d["source"]))
for n in e.notes if not e.erased else []:
    st.warning(n)

# only the chosen tab runs and is drawn (each tab has its charts and tables; drawing all four at
# once made every decision picked wait for the browser to lay out the hidden ones too)
tab_why, tab_grid, tab_inputs, tab_whynot = st.tabs(
    [tr("replay.tab_why"), tr("replay.tab_all"), tr("replay.tab_inputs"), tr("replay.tab_why_not")],
    key="rp_tab", on_change="rerun")
if tab_why.open:
    with tab_why:
        if not e.chosen:
            st.info(tr("replay.none_chosen"))
        for aid in e.chosen:
            row = e.candidates.set_index("action_id").loc[aid]
            st.subheader(named(aid), help=tr("replay.action_id", id=aid))
            if all(row[k] is not None and row[k] == row[k] for k in ("priority", "propensity", "value", "context_weight",
                                                                        "lever")):
                st.markdown(tr("replay.priority_line", priority=number(row["priority"], 2), propensity=percent(
                    row["propensity"]), value=f"{number(row['value'], 2)} {currency}", weight=number(row["context_weight"], 2),
                    lever=number(row["lever"], 2)))
            else:
                st.caption(tr("replay.no_factors"))
            marked = e.strategy is not None and e.strategy.disclosure.declared  # mark what a customer is told
            for r, told in zip(e.reason_texts(aid, lg_lang), e.disclosed(aid)):
                mark = f" — *{tr('reason.customer_sees') if told else tr('reason.internal_only')}*" if marked else ""
                st.markdown(f"- {md(r)}{mark}")
            ca = e.attributions.get(aid)
            if ca is None:
                continue
            if ca.verified:
                predicts = e.strategy.actions[e.strategy.action_index(aid)].predicts
                st.caption(tr("replay.attributions_checked"))
                labels = e.feature_phrases(ca.features, lg_lang)
                st.plotly_chart(figures.attribution_waterfall(list(ca.features), ca.phi, ca.base_value, ca.raw_output,
                                                              labels, outcome=tr(f"predicts_short.{predicts}"),
                                                              lang=lg_lang),
                                width="stretch", key=f"wf_{aid}")
                with st.expander(tr("replay.technical")):
                    st.caption(tr("replay.attributions_detail", model=ca.model_version,
                                  rescored=f"{ca.propensity_rescored:.6g}", logged=f"{ca.propensity_logged:.6g}",
                                  residual=f"{ca.residual:.1e}", algorithm=ca.algorithm, library=ca.library))
            else:
                st.error(tr("replay.attributions_withheld", problems=md("; ".join(ca.problems))))
if tab_grid.open:
    with tab_grid:
        st.plotly_chart(figures.decision_grid(e.candidates, None if e.strategy is not None else e.stages, names=names,
                                              lang=lg_lang),
                        width="stretch", key="grid")
        if e.candidates["propensity"].notna().any():
            st.plotly_chart(figures.priority_factors(e.candidates, names=names, lang=lg_lang), width="stretch",
                            key="factors")
        shown = e.candidates.copy()
        shown.insert(0, "name", shown["action_id"].map(named))
        table(shown, f"candidates_{did}", column_config={
            "name": tr("col.action"), "action_id": tr("col.action_id"), "issue": tr("col.issue"), "group": tr("col.group"),
            "stage": None, "stage_label": tr("col.stage"), "stage_order": None, "rule": tr("col.rule"),
            "reason": tr("col.reason"),
            "propensity": st.column_config.NumberColumn(tr("col.propensity"), format="percent"),
            "value": st.column_config.NumberColumn(tr("col.value", currency=currency), format="%.2f"),
            "context_weight": st.column_config.NumberColumn(tr("col.context_weight"), format="%.2f"),
            "lever": st.column_config.NumberColumn(tr("col.lever"), format="%.2f"),
            "priority": st.column_config.NumberColumn(tr("col.priority"), format="%.3f"),
            "rank": tr("col.rank"), "selected": tr("col.selected"), "model_version": tr("col.model_version"),
            "rows": tr("col.rows")})
        if e.component_level:
            st.subheader(tr("replay.component_rows", n=number(len(e.rows))))
            st.caption(tr("replay.component_caption"))
            table(e.rows, f"rows_{did}")
if tab_inputs.open:
    with tab_inputs:
        if e.erased:
            st.info(tr("erased.inputs"))
        table(e.display_inputs(), f"inputs_{did}")
        st.json({k: v for k, v in e.inputs.items() if k != "features"}, expanded=False)
if tab_whynot.open:
    with tab_whynot:
        others = [a for a in e.candidates["action_id"] if a not in e.chosen[:1]]
        if not e.chosen:
            st.info(tr("replay.no_winner"))
        else:
            other = st.selectbox(tr("replay.why_not_pick", winner=named(e.chosen[0])), others, key="whynot",
                                 format_func=named)
            c = ex.why_not(did, other)
            answer, cf_notes = why_not_text(c, e, lg_lang, names)
            st.markdown(f"**{md(answer)}**")
            if c.tested:
                st.markdown(tr("replay.tested") + ", ".join(f"{md(k)} = **{md(v)}**" for k, v in c.tested.items()))
            if c.log_ratio is not None:
                st.caption(tr("replay.contrast_caption", winner=named(c.winner), other=named(c.other),
                              times=number(2.718281828459045 ** c.log_ratio, 2)))
                st.plotly_chart(figures.contrast_bars([(tr(f"term.{t.name}"), t.log_ratio) for t in c.terms],
                                                      named(c.winner), named(c.other), lang=lg_lang),
                                width="stretch", key="contrast")
            if c.propensity_terms:
                st.caption(tr("replay.propensity_caption"))
                st.plotly_chart(figures.contrast_bars([(t.name, t.log_ratio) for t in c.propensity_terms[:12]],
                                                      named(c.winner), named(c.other), lang=lg_lang, propensity=True),
                                width="stretch", key="contrast_p")
            for cf, note in zip(c.counterfactuals, cf_notes):
                (st.success if cf.needed is not None else st.info)(
                    f"**{tr(f'term.{cf.parameter}')}:** {note}" + (tr("replay.cf_verified") if cf.verified else ""))

st.divider()
st.markdown(tr("replay.evidence"))
who = current_user()
exporter = who.name if who is not None else tr("replay.local_user", user=getpass.getuser())


def _evidence() -> dict:
    return evidence.evidence(lg, ex, did, exporter, lg_lang)


d1, d2, d3 = st.columns(3)
# built only when clicked: each export re-checks the record and explains why not every other action
d1.download_button(tr("replay.export_pdf"), lambda: evidence.to_pdf(_evidence()), f"decision_{did}.pdf",
                   "application/pdf", key="dl_pdf", on_click="ignore")
d2.download_button(tr("replay.export_html"), lambda: evidence.to_html(_evidence()).encode(), f"decision_{did}.html",
                   "text/html", key="dl_html", on_click="ignore")
d3.download_button(tr("replay.export_json"), lambda: evidence.to_json(_evidence()).encode(), f"decision_{did}.json",
                   "application/json", key="dl_json", on_click="ignore")
