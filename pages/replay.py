import json

import streamlit as st

from decision_log import queries
from decision_log.replay import replay
from decisioning.errors import KlartextError
from decisioning.strategy import PREDICTS_SHORT
from explain import figures
from explain.reasons import feature_phrase
from explain.report import html_report
from pages.common import explainer, filters, log, md, require, show_error, table, tr

require("decisions")

st.title(tr("replay.title"))
st.caption(tr("replay.caption"))
lg = log()
if lg is None:
    st.stop()
ex = explainer(lg)
con = lg.con.cursor()
f = filters(con, issues=False)

if "decision" in st.query_params and "q_id" not in st.session_state:  # a link from Customer history
    st.session_state["q_id"] = st.query_params["decision"]
c1, c2, c3 = st.columns([2, 2, 2])
did_q = c1.text_input("Decision id (or its start)", key="q_id").strip()
cust_q = c2.text_input("Customer (pseudonym or raw id)", key="q_customer").strip()
action_q = c3.selectbox("Chosen action", ["any"] + queries.choices(con)["actions"], key="q_action")
customer = None
if cust_q:
    known = not queries.find_decisions(con, customer=cust_q, limit=1).empty
    customer = cust_q if known else lg.pseudonymise([cust_q])[0]
found = queries.find_decisions(con, decision_id=did_q or None, customer=customer,
                               action=None if action_q == "any" else action_q, f=f, limit=200)
if found.empty:
    st.warning("No decision matches" + (f" id {did_q!r}" if did_q else "") + (f", customer {cust_q!r}" if cust_q else "")
               + ". Check the id, clear a filter, or widen the period.")
    st.stop()
found["chosen_actions"] = found["chosen_actions"].map(lambda a: ", ".join(a) if len(a) else "— no action —")
st.dataframe(found, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="found")
picked = st.session_state.get("found", {}).get("selection", {}).get("rows", [])
did = found["decision_id"].iloc[picked[0] if picked and picked[0] < len(found) else 0]

try:
    e = ex.explain(did)
except KlartextError as exc:
    show_error(exc)
    st.stop()
d = e.decision
st.header(f"Decision {md(did)}")
rep = replay(lg, [did])[0]
if rep.reproduced:
    replay_note = "Replay verified: re-executed now with the pinned strategy and models, every candidate matches exactly."
    st.success(replay_note, icon=":material/verified:")
elif not rep.replayable:
    replay_note = f"Not replayable: {rep.note}."
    st.info(replay_note)
else:
    replay_note = f"Replay FAILED: {len(rep.differences)} difference(s), e.g. " + \
        ", ".join(f"{x.action_id}.{x.field}: logged {x.logged!r}, replayed {x.replayed!r}" for x in rep.differences[:3])
    st.error(replay_note)
m = st.columns(4)
m[0].metric("Channel", d["channel"], d["direction"], delta_color="off")
m[1].metric("Chosen", ", ".join(e.chosen) or "no action")
sp, lat = d["selection_probability"], d["latency_us"]
m[2].metric("Selection probability", "—" if sp is None or sp != sp else f"{sp:.3g}",
            "explored" if d["explored"] else None, delta_color="off")
m[3].metric("Engine latency", "—" if lat is None or lat != lat else f"{int(lat):,} µs")
st.caption(f"{d['ts']:%Y-%m-%d %H:%M:%S %Z} · customer `{d['customer']}` · strategy `{d['strategy_version']}` "
           f"· source `{d['source']}`")
for n in e.notes:
    st.warning(n)

tab_why, tab_grid, tab_inputs, tab_whynot = st.tabs(["Why this action", "Every action", "Inputs", "Why not …?"])
feats = e.inputs.get("features", {})
with tab_why:
    if not e.chosen:
        st.info("No action was chosen: every action was filtered or stayed below the no-action threshold. "
                "See **Every action** for each one's stage and reason.")
    for aid in e.chosen:
        row = e.candidates.set_index("action_id").loc[aid]
        st.subheader(aid)
        if all(row[k] is not None and row[k] == row[k] for k in ("priority", "propensity", "value", "context_weight",
                                                                    "lever")):
            st.markdown(f"priority **{row['priority']:.4g}** = propensity {row['propensity']:.4g} × value "
                        f"{row['value']:.4g} × context weight {row['context_weight']:.4g} × lever {row['lever']:.4g}")
        else:
            st.caption("The source logged no complete set of priority factors for this action.")
        for r in e.reasons.get(aid, []):
            st.markdown(f"- {md(r.text)}")
        ca = e.attributions.get(aid)
        if ca is None:
            continue
        if ca.verified:
            st.caption(f"Attributions verified: the pinned model {ca.model_version} re-scores the logged inputs to "
                       f"{ca.propensity_rescored:.6g} (logged {ca.propensity_logged:.6g}); base + Σ = output "
                       f"(residual {ca.residual:.1e}). {ca.algorithm}, {ca.library}.")
            labels = [feature_phrase(e.strategy, x, d["channel"] if x == "channel" else feats.get(x)) for x in ca.features]
            predicts = e.strategy.actions[e.strategy.action_index(aid)].predicts
            st.plotly_chart(figures.attribution_waterfall(list(ca.features), ca.phi, ca.base_value, ca.raw_output,
                                                          labels, outcome=PREDICTS_SHORT[predicts]),
                            width="stretch", key=f"wf_{aid}")
        else:
            st.error("Attributions withheld — " + md("; ".join(ca.problems)))
with tab_grid:
    st.plotly_chart(figures.decision_grid(e.candidates, None if e.strategy is not None else e.stages),
                    width="stretch", key="grid")
    if e.candidates["propensity"].notna().any():
        st.plotly_chart(figures.priority_factors(e.candidates), width="stretch", key="factors")
    table(e.candidates, f"candidates_{did}")
    if e.component_level:
        st.subheader(f"Component rows ({len(e.rows):,})")
        st.caption("The source logged each action once per strategy component it passed, in this order; the grid "
                   "above shows each action where it got furthest.")
        table(e.rows, f"rows_{did}")
with tab_inputs:
    table(e.display_inputs(), f"inputs_{did}")
    st.json({k: v for k, v in e.inputs.items() if k != "features"}, expanded=False)
contrasts = []
with tab_whynot:
    others = [a for a in e.candidates["action_id"] if a not in e.chosen[:1]]
    if not e.chosen:
        st.info("No winner to compare with: this decision chose no action.")
    else:
        other = st.selectbox(f"Why {e.chosen[0]} and not …", others, key="whynot")
        c = ex.why_not(did, other)
        contrasts.append(c)
        st.markdown(f"**{md(c.summary)}**")
        if c.tested:
            st.markdown("Values the rule tested: " + ", ".join(f"{md(k)} = **{md(v)}**" for k, v in c.tested.items()))
        if c.log_ratio is not None:
            st.plotly_chart(figures.contrast_bars([(t.name.replace("_", " "), t.log_ratio) for t in c.terms],
                                                  c.winner, c.other), width="stretch", key="contrast")
        if c.propensity_terms:
            st.caption("The propensity term, by the two models' attributions (log-odds):")
            st.plotly_chart(figures.contrast_bars([(t.name, t.log_ratio) for t in c.propensity_terms[:12]],
                                                  c.winner, c.other), width="stretch", key="contrast_p")
        for cf in c.counterfactuals:
            (st.success if cf.needed is not None else st.info)(
                f"**{cf.parameter.replace('_', ' ')}:** {cf.note}" + (" (verified by re-arbitration)" if cf.verified else ""))

st.divider()
d1, d2 = st.columns(2)
record = e.to_dict()
record["replay"] = {"reproduced": rep.reproduced, "note": replay_note}
record["why_not"] = [c.to_dict() for c in contrasts]
# built only when clicked: the HTML report inlines plotly.js (a few MB)
d1.download_button("Export record (JSON)", lambda: json.dumps(record, indent=2, default=str).encode(),
                   f"decision_{did}.json", "application/json", key="dl_json", on_click="ignore")
d2.download_button("Export report (HTML)", lambda: html_report(e, contrasts, replay_note).encode(),
                   f"decision_{did}.html", "text/html", key="dl_html", on_click="ignore")
