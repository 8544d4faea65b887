import streamlit as st

from decision_log import queries
from pages.common import fmt, log, tr

st.title(tr("integrity.title"))
st.caption(tr("integrity.caption"))
lg = log()
if lg is None:
    st.stop()
n = queries.decision_count(lg.con.cursor())
num, _ = fmt()
st.markdown(tr("integrity.holds", n=num(n)))
c1, c2 = st.columns(2)
if c2.button(tr("integrity.links_button"), key="links"):
    link_bar = st.progress(0.0, text=tr("integrity.linking"))
    res = lg.links(progress=lambda done, total: link_bar.progress(
        done / max(total, 1), text=tr("integrity.links_progress", done=num(done), total=num(total))))
    link_bar.empty()
    if res.ok:
        st.success(tr("integrity.links_ok", n=num(res.n_decisions)))
    else:
        st.error(tr("integrity.links_failed", decision=res.first_bad_decision, seq=res.first_bad_seq,
                    problem=res.problem))
if c1.button(tr("integrity.verify_button"), type="primary", key="verify"):
    bar = st.progress(0.0, text=tr("integrity.verifying"))
    import time

    started = time.perf_counter()
    res = lg.verify(progress=lambda done, total: bar.progress(
        done / max(total, 1), text=tr("integrity.progress", done=num(done), total=num(total))))
    bar.empty()
    if lg.replica is None and lg.path != ":memory:":  # the governance report starts from a recorded full check
        import getpass

        from decisioning.errors import KlartextError
        from pages.common import current_user

        user = current_user()
        last = lg.last_seq()
        try:
            with lg.register() as reg:
                reg.record_verification(user.name if user is not None else "local:" + getpass.getuser(), "dashboard",
                                        res.ok, res.n_decisions, last, res.head_hash, res.seal_head,
                                        time.perf_counter() - started)
        except KlartextError:
            pass  # the register is busy: the result stands, unrecorded
    if res.ok:
        st.success(tr("integrity.verified", n=num(res.n_decisions)), icon=":material/verified:")
    elif res.first_bad_decision is None and res.table is not None:
        st.error(tr("integrity.table_failed", table=res.table, problem=res.problem))
    else:
        st.error(tr("integrity.failed", decision=res.first_bad_decision, seq=res.first_bad_seq, problem=res.problem))
    st.markdown(tr("integrity.head", head=res.head_hash))
