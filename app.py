"""Klartext dashboard: `streamlit run app.py [-- --db PATH]` (or set KLARTEXT_DB).

With $KLARTEXT_USERS (a users file, see `klartext user add`) everyone signs in first, and the
pages follow the user's role: viewers see aggregates only; reviewers and admins also single
decisions, customers and explanations.  `klartext app` sets it up.
"""

import streamlit as st

from pages.common import current_user, language_choice, live_run, sign_out_button, tr

st.set_page_config(page_title="Klartext", page_icon=":material/search:", layout="wide")
user = current_user(entrypoint=True)  # stops at the sign-in form until someone has signed in
may_read_decisions = user is None or user.may("decisions")
language_choice()
pages = {
    tr("nav.governance"): [
        st.Page("pages/overview.py", title=tr("overview.title"), icon=":material/monitoring:", default=True),
        st.Page("pages/report.py", title=tr("report.page.title"), icon=":material/summarize:"),
        st.Page("pages/fairness.py", title=tr("report.page.fairness_title"), icon=":material/diversity_3:"),
        st.Page("pages/tradeoffs.py", title=tr("tradeoffs.title"), icon=":material/balance:"),
        st.Page("pages/strategy_versions.py", title=tr("lifecycle.page.title"), icon=":material/history:"),
    ],
    tr("nav.decisions"): [
        *([st.Page("pages/replay.py", title=tr("replay.title"), icon=":material/replay:"),
           st.Page("pages/customer.py", title=tr("customer.title"), icon=":material/person_search:"),
           st.Page("pages/compliance.py", title=tr("compliance.title"), icon=":material/gavel:")]
          if may_read_decisions else []),
        st.Page("pages/funnel.py", title=tr("funnel.title"), icon=":material/filter_alt:"),
    ],
    tr("nav.models"): [
        *([st.Page("pages/explanations.py", title=tr("explanations.title"), icon=":material/insights:")]
          if may_read_decisions else []),
        st.Page("pages/models.py", title=tr("models.title"), icon=":material/model_training:"),
        st.Page("pages/model_health.py", title=tr("report.page.models_title"), icon=":material/monitor_heart:"),
        st.Page("pages/integrity.py", title=tr("integrity.title"), icon=":material/verified_user:"),
    ],
}
nav = st.navigation(pages, expanded=True)  # every page in sight, none behind "View more"
sign_out_button(user)
with live_run():  # while `klartext serve` holds the log, each run reads its freshest replica
    nav.run()
