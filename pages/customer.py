import streamlit as st

from decision_log import queries
from pages.common import (
    action_label,
    catalog,
    current_user,
    explainer,
    fmt,
    lang,
    log,
    md,
    money,
    record_view,
    require,
    table,
    tr,
)

require("decisions")

st.title(tr("customer.title"))
st.caption(tr("customer.caption"))
lg = log()
if lg is None:
    st.stop()
con = lg.con.cursor()
names, currency = catalog(lg)
number, _ = fmt()
q = st.text_input(tr("customer.input"), key="cust").strip()
if not q:
    example = queries.newest_customer(con)
    st.info(tr("customer.enter", example=example))
    st.stop()
hist = queries.customer_history(con, q)
pseudonym = q
if hist.empty:
    pseudonym = lg.pseudonymise([q])[0]
    hist = queries.customer_history(con, pseudonym)
if hist.empty:
    st.warning(tr("customer.unknown", q=md(repr(q)), pseudonym=pseudonym))
    st.stop()
record_view(lg, "customer", pseudonym, customer=pseudonym)
c = st.columns(4)
c[0].metric(tr("customer.decisions"), number(len(hist)))
c[1].metric(tr("customer.accepted"), number(int(hist["accepted"].sum())))
c[2].metric(tr("customer.revenue"), money(hist["revenue"].fillna(0).sum(), currency))
c[3].metric(tr("customer.margin"), money(hist["margin"].fillna(0).sum(), currency))
st.caption(tr("customer.span", pseudonym=pseudonym, first=f"{hist['ts'].min():%Y-%m-%d}",
              last=f"{hist['ts'].max():%Y-%m-%d}"))
hist["chosen_actions"] = hist["chosen_actions"].map(
    lambda a: ", ".join(action_label(names, x) for x in a) if len(a) else tr("replay.no_action_dash"))
hist["outcome"] = hist["outcome"].fillna(tr("customer.none_reported"))
hist.insert(1, "replay", "replay?decision=" + hist["decision_id"])
table(hist, f"customer_{pseudonym[:12]}", column_config={
    "decision_id": tr("col.decision"),
    "replay": st.column_config.LinkColumn(tr("customer.replay"), display_text=tr("customer.open"),
                                          help=tr("customer.replay_help")),
    "ts": st.column_config.DatetimeColumn(tr("col.time"), format="YYYY-MM-DD HH:mm"),
    "channel": tr("col.channel"), "direction": tr("customer.direction"), "trigger": tr("customer.trigger"),
    "chosen_actions": tr("col.chosen"), "outcome": tr("customer.outcome"), "accepted": tr("customer.accepted_col"),
    "churned": tr("customer.churned"),
    "revenue": st.column_config.NumberColumn(tr("customer.revenue_col", currency=currency), format="%.2f"),
    "margin": st.column_config.NumberColumn(tr("customer.margin_col", currency=currency), format="%.2f"),
    "strategy_version": tr("customer.strategy")})

# the customer's own explanation (GDPR Art. 15(1)(h), AI Act Art. 86), as a PDF to hand over
st.subheader(tr("customer.subject"))
st.caption(tr("customer.subject_help"))
key = f"subject_{pseudonym}_{lang()}"
if st.button(tr("customer.subject_make"), key="subject_make"):
    import getpass

    from explain import subject

    user = current_user()
    report = subject.subject_report(lg, explainer(lg), q, lang(), user.name if user else "local:" + getpass.getuser(),
                                    via="dashboard", pseudonym=pseudonym)
    st.session_state[key] = subject.to_pdf(report)
if key in st.session_state:
    st.download_button(tr("customer.subject_download"), st.session_state[key], file_name=f"subject_{lang()}.pdf",
                       mime="application/pdf", key="subject_download")
