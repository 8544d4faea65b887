import streamlit as st

from decision_log import integrity, queries
from pages.common import log, tr

st.title(tr("integrity.title"))
st.caption(tr("integrity.caption"))
lg = log()
if lg is None:
    st.stop()
n = queries.decision_count(lg.con.cursor())
st.markdown(f"The log holds **{n:,}** decisions. A full check reads every row (about 10 s per 100,000 decisions "
            "on a 2-core machine); the CLI does the same: `klartext verify --db PATH`.")
c1, c2 = st.columns(2)
if c2.button("Check the chain links only (fast)", key="links"):
    res = integrity.links(lg.con.cursor())
    if res.ok:
        st.success(f"Chain links intact for all {res.n_decisions:,} decisions (records not re-read).")
    else:
        st.error(f"Chain check FAILED at decision `{res.first_bad_decision}` (position {res.first_bad_seq}): "
                 f"{res.problem}.")
if c1.button("Verify the hash chain", type="primary", key="verify"):
    bar = st.progress(0.0, text="Verifying …")
    res = integrity.verify(lg.con.cursor(), progress=lambda done, total: bar.progress(
        done / max(total, 1), text=f"Verified {done:,} of {total:,} decisions"))
    bar.empty()
    if res.ok:
        st.success(f"Verified: all {res.n_decisions:,} decisions and their candidates are unchanged.",
                   icon=":material/verified:")
    else:
        st.error(f"Verification FAILED at decision `{res.first_bad_decision}` (position {res.first_bad_seq}): "
                 f"{res.problem}.")
    st.markdown(f"Head hash of the chain: `{res.head_hash}` — keep it outside the database; a later check that "
                "prints the same head proves nothing before it was changed.")
