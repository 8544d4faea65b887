"""Compliance: the review queue (GDPR Art. 22(3)), a weekly QA sample, who looked at what,
objections and erasures — all read from the sealed compliance register."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from decision_log import queries
from decision_log.register import REVIEW_STATUSES
from pages.common import action_label, catalog, current_user, fmt, log, md, record_view, require, table, tr

require("decisions")

st.title(tr("compliance.title"))
st.caption(tr("compliance.caption"))
lg = log()
if lg is None:
    st.stop()
con = lg.con.cursor()
names, _ = catalog(lg)
number, _ = fmt()
user = current_user()
tab_queue, tab_qa, tab_access, tab_rights = st.tabs(
    [tr("compliance.tab_queue"), tr("compliance.tab_qa"), tr("compliance.tab_access"), tr("compliance.tab_rights")])


def status_label(s: str) -> str:
    return tr(f"review.{s}")


def chosen(actions) -> str:
    return ", ".join(action_label(names, a) for a in actions) if len(actions) else tr("replay.no_action_dash")


with tab_queue:
    status = st.selectbox(tr("compliance.status"), REVIEW_STATUSES, index=REVIEW_STATUSES.index("contested"),
                          format_func=status_label, key="queue_status")
    with lg.register(read_only=True) as reg:
        reviews = reg.reviews(status=status) if reg is not None else pd.DataFrame()
    if reviews.empty:
        st.info(tr("compliance.queue_empty", status=status_label(status)))
    else:
        latest = reviews.groupby("decision_id").tail(1)
        st.markdown(tr("compliance.queue_count", n=number(len(latest)), status=status_label(status)))
        shown = latest.assign(status=latest["status"].map(status_label),
                              replay="replay?decision=" + latest["decision_id"])[
            ["ts", "decision_id", "replay", "status", "reviewer", "comment"]]
        table(shown, f"reviews_{status}", column_config={
            "ts": st.column_config.DatetimeColumn(tr("col.time"), format="YYYY-MM-DD HH:mm"),
            "decision_id": tr("col.decision"), "status": tr("evidence.review_status"),
            "replay": st.column_config.LinkColumn(tr("customer.replay"), display_text=tr("customer.open")),
            "reviewer": tr("evidence.reviewer"), "comment": tr("evidence.comment")})
    st.subheader(tr("compliance.mark"))
    with st.form("review_form", clear_on_submit=True):
        did = st.text_input(tr("col.decision"), key="review_id").strip()
        new_status = st.selectbox(tr("evidence.review_status"), REVIEW_STATUSES, format_func=status_label,
                                  key="review_status")
        comment = st.text_area(tr("evidence.comment"), key="review_comment")
        if st.form_submit_button(tr("compliance.mark_button")):
            found = con.execute("SELECT customer FROM decisions WHERE decision_id = ?", [did]).fetchall()
            if not found:
                st.error(tr("compliance.unknown_decision", id=md(did)))
            else:
                import getpass

                who = user.name if user is not None else "local:" + getpass.getuser()
                with lg.register() as reg:
                    reg.record_review(did, found[0][0], new_status, who, comment or None)
                    reg.record_access(who, "dashboard", "review", did, customer=found[0][0])
                st.success(tr("compliance.marked", id=md(did), status=status_label(new_status), by=md(who)))

with tab_qa:
    today = datetime.now(UTC).date()
    weeks = [today - timedelta(days=today.weekday() + 7 * k) for k in range(0, 8)]
    week = st.selectbox(tr("compliance.week"), weeks, format_func=lambda d: f"{d:%G-W%V} ({d:%Y-%m-%d})", key="qa_week")
    size = st.number_input(tr("compliance.sample_size"), 5, 500, 20, step=5, key="qa_size")
    ids, total = queries.week_sample(con, week, int(size))
    st.markdown(tr("compliance.sample", k=number(len(ids)), n=number(total), week=f"{week:%G-W%V}"))
    sample = queries.decisions_by_id(con, ids)
    if len(sample):
        with lg.register(read_only=True) as reg:
            done = reg.reviews() if reg is not None else pd.DataFrame(columns=["decision_id", "status"])
        last = done.groupby("decision_id")["status"].last() if len(done) else pd.Series(dtype=str)
        sample = sample.assign(chosen_actions=sample["chosen_actions"].map(chosen),
                               reviewed=sample["decision_id"].map(lambda d: status_label(last[d]) if d in last.index
                                                                  else "—"),
                               replay="replay?decision=" + sample["decision_id"]).drop(columns=["customer"])
        st.markdown(tr("compliance.sample_done", done=number(int((sample["reviewed"] != "—").sum())),
                       k=number(len(sample))))
        table(sample, f"qa_{week:%G-W%V}", column_config={
            "decision_id": tr("col.decision"), "channel": tr("col.channel"), "chosen_actions": tr("col.chosen"),
            "ts": st.column_config.DatetimeColumn(tr("col.time"), format="YYYY-MM-DD HH:mm"),
            "reviewed": tr("evidence.review_status"),
            "replay": st.column_config.LinkColumn(tr("customer.replay"), display_text=tr("customer.open"))})

with tab_access:
    record_view(lg, "access_log", "page")
    who = st.text_input(tr("compliance.access_user"), key="access_user").strip() or None
    q = st.text_input(tr("compliance.access_customer"), key="access_customer").strip()
    pseudo = None
    if q:
        pseudo = q if len(q) == 32 and all(c in "0123456789abcdef" for c in q) else str(lg.pseudonymise([q])[0])
    with lg.register(read_only=True) as reg:
        acc = reg.access_log(customer=pseudo, actor=who, limit=5000) if reg is not None else pd.DataFrame()
    if acc.empty:
        st.info(tr("compliance.access_empty"))
    else:
        acc = acc.assign(what=acc["what"].map(lambda w: tr(f"compliance.what_{w}")))
        table(acc, "access_log", column_config={
            "ts": st.column_config.DatetimeColumn(tr("col.time"), format="YYYY-MM-DD HH:mm:ss"),
            "actor": tr("subject.who"), "via": tr("compliance.via"), "what": tr("subject.what"),
            "target": tr("compliance.target"), "customer": tr("compliance.customer"), "why": tr("compliance.why")})

with tab_rights:
    with lg.register(read_only=True) as reg:
        erasures = reg.erasure_list() if reg is not None else pd.DataFrame()
        objections = reg.objections() if reg is not None else {}
    st.subheader(tr("compliance.objections", n=number(len(objections))))
    if objections:
        st.dataframe(pd.DataFrame([{tr("compliance.customer"): c, tr("col.channel"): ", ".join(sorted(ch)) if ch
                                    else tr("compliance.all_channels")} for c, ch in objections.items()]),
                     hide_index=True, width="stretch")
    removed = con.execute("SELECT count(*) FROM candidates WHERE rule = 'objection'").fetchall()[0][0]
    st.caption(tr("compliance.objection_rows", n=number(removed)))
    with lg.register(read_only=True) as reg:
        periods = reg.objection_periods() if reg is not None else []
    marketing = {sv: {a.id for a in lg.load_strategy(sv).actions if a.marketing}
                 for (sv,) in con.execute("SELECT version FROM strategies").fetchall()}
    bad = queries.objection_violations(con, periods, marketing)
    if bad.empty:
        st.success(tr("compliance.no_violations", n=number(len(periods))), icon=":material/check_circle:")
    else:
        st.error(tr("compliance.violations", n=number(len(bad))))
        st.dataframe(bad, hide_index=True, width="stretch")
    st.subheader(tr("compliance.erasures", n=number(len(erasures))))
    if len(erasures):
        st.dataframe(erasures, hide_index=True, width="stretch")
