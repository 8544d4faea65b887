import streamlit as st

from decision_log import queries
from pages.common import log, md, require, table, tr

require("decisions")

st.title(tr("customer.title"))
st.caption(tr("customer.caption"))
lg = log()
if lg is None:
    st.stop()
con = lg.con.cursor()
q = st.text_input("Customer: raw id (hashed here with the log's key) or pseudonym", key="cust").strip()
if not q:
    example = queries.newest_customer(con)
    st.info(f"Enter a customer. Raw ids are never stored: they are turned into the keyed pseudonym here. "
            f"Example pseudonym from the log: `{example}`")
    st.stop()
hist = queries.customer_history(con, q)
pseudonym = q
if hist.empty:
    pseudonym = lg.pseudonymise([q])[0]
    hist = queries.customer_history(con, pseudonym)
if hist.empty:
    st.warning(f"No decision about {md(repr(q))} in this log (pseudonym `{pseudonym}`). Check the id, or that this log "
               "uses the same pseudonym key (`<log>.key` or $KLARTEXT_PSEUDONYM_KEY).")
    st.stop()
c = st.columns(3)
c[0].metric("Decisions", len(hist))
c[1].metric("Actions accepted", int(hist["accepted"].sum()))
c[2].metric("Revenue", f"{hist['revenue'].fillna(0).sum():,.2f}")
st.caption(f"Pseudonym `{pseudonym}` · from {hist['ts'].min():%Y-%m-%d} to {hist['ts'].max():%Y-%m-%d}")
hist["chosen_actions"] = hist["chosen_actions"].map(lambda a: ", ".join(a) if len(a) else "— no action —")
hist["outcome"] = hist["outcome"].fillna("— none reported —")
hist.insert(1, "replay", "replay?decision=" + hist["decision_id"])
table(hist, f"customer_{pseudonym[:12]}", column_config={
    "replay": st.column_config.LinkColumn("Replay", display_text="Open", help="This decision in Decision replay"),
    "ts": st.column_config.DatetimeColumn("Time", format="YYYY-MM-DD HH:mm"),
    "chosen_actions": "Chosen", "accepted": "Accepted", "churned": "Churned",
    "revenue": st.column_config.NumberColumn("Revenue", format="%.2f"),
    "margin": st.column_config.NumberColumn("Margin", format="%.2f")})
