"""Klartext dashboard: `streamlit run app.py [-- --db PATH]` (or set KLARTEXT_DB).

With $KLARTEXT_USERS (a users file, see `klartext user add`) everyone signs in first, and the
pages follow the user's role: viewers see aggregates only; reviewers and admins also single
decisions, customers and explanations.  `klartext app` sets it up.
"""

import streamlit as st

from pages.common import current_user, live_run, sign_out_button

st.set_page_config(page_title="Klartext", page_icon=":material/search:", layout="wide")
user = current_user(entrypoint=True)  # stops at the sign-in form until someone has signed in
may_read_decisions = user is None or user.may("decisions")
pages = {
    "Governance": [
        st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
        st.Page("pages/tradeoffs.py", title="KPI trade-offs", icon=":material/balance:"),
    ],
    "Decisions": [
        *([st.Page("pages/replay.py", title="Decision replay", icon=":material/replay:"),
           st.Page("pages/customer.py", title="Customer history", icon=":material/person_search:")]
          if may_read_decisions else []),
        st.Page("pages/funnel.py", title="Funnel & policies", icon=":material/filter_alt:"),
    ],
    "Models": [
        *([st.Page("pages/explanations.py", title="Explanations", icon=":material/insights:")]
          if may_read_decisions else []),
        st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
        st.Page("pages/integrity.py", title="Integrity", icon=":material/verified_user:"),
    ],
}
nav = st.navigation(pages)
sign_out_button(user)
with live_run():  # while `klartext serve` holds the log, each run reads its freshest replica
    nav.run()
