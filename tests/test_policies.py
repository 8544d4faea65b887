"""Each policy stage filters the actions it should, and says which rule fired with which values."""

from conftest import cell, decide_one, request


def test_channel_availability_is_the_first_eligibility_rule(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(channel="web"))
    c = cell(b, tiny_strategy, "newsletter")
    assert c["stage"] == "eligibility"
    assert c["rule"] == "available_on_channel"
    assert c["reason"] == "eligibility/available_on_channel: channel='web' not in [email]"


def test_eligibility_rule_reports_channel_and_consent(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(channel="email", email_consent=False))
    c = cell(b, tiny_strategy, "reactivate_0")
    assert (c["stage"], c["rule"]) == ("eligibility", "email_needs_consent")
    assert c["reason"] == "eligibility/email_needs_consent: channel='email' == 'email' and not [email_consent=false]"
    # the service newsletter is outside the rule's scope and survives it
    assert cell(b, tiny_strategy, "newsletter")["rule"] != "email_needs_consent"


def test_applicability_never_offers_a_held_product(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(holds_card=True))
    c = cell(b, tiny_strategy, "store_card")
    assert (c["stage"], c["rule"], c["reason"]) == (
        "applicability", "already_holds_product", "applicability/already_holds_product: holds_card=true")


def test_applicability_rule_with_category_value(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(channel="email", segment="vip"))
    c = cell(b, tiny_strategy, "newsletter")
    assert c["reason"] == "applicability/vip_no_newsletter: segment='vip' == 'vip'"


def test_suitability_no_credit_in_arrears(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(arrears_days=45))
    c = cell(b, tiny_strategy, "pay_later")
    assert (c["stage"], c["rule"]) == ("suitability", "no_credit_in_arrears")
    assert c["reason"] == "suitability/no_credit_in_arrears: arrears_days=45 > 0"
    # not scored: no factors for a filtered action
    assert all(c[k] != c[k] for k in ("propensity", "value", "priority"))  # NaN


def test_contact_limit_blocks_every_action_on_the_channel(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(channel="email", contacts={"email": 2}))
    for action in ("store_card", "reactivate_0", "newsletter"):
        c = cell(b, tiny_strategy, action)
        assert (c["stage"], c["rule"]) == ("contact", "max_contacts_email")
        assert c["reason"] == "contact/max_contacts_email: 2 contacts on email in the last 7 days, limit 2"
    assert b.chosen[0] == []


def test_contact_limit_not_reached(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(channel="email", contacts={"email": 1}))
    assert cell(b, tiny_strategy, "newsletter")["stage"] != "contact"


def test_suppression_after_repeated_rejections(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(rejections={"store_card": {"count": 3, "days_since_last": 4}}))
    c = cell(b, tiny_strategy, "store_card")
    assert (c["stage"], c["rule"]) == ("contact", "suppressed_after_rejections")
    assert c["reason"] == ("contact/suppressed_after_rejections: rejected 3 times within 30 days (limit 3), "
                           "last 4 days ago, suppressed for 30 days")


def test_suppression_ends_after_its_period(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(rejections={"store_card": {"count": 3, "days_since_last": 31}}))
    assert cell(b, tiny_strategy, "store_card")["stage"] not in ("contact",)


def test_first_failing_stage_wins(tiny_engine, tiny_strategy):
    # pay_later is web-only: on email it stops at eligibility even though arrears would also remove it
    b = decide_one(tiny_engine, request(channel="email", arrears_days=10))
    assert cell(b, tiny_strategy, "pay_later")["rule"] == "available_on_channel"
