"""Shared fixtures: a tiny readable strategy with real models, and a small demo log."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from decisioning.engine import Engine
from decisioning.inputs import Requests
from decisioning.models import train_models
from decisioning.strategy import parse_strategy

TINY_YAML = """\
name: Tiny shop
currency: EUR
channels:
  web:   {direction: inbound, top_n: 2}
  email: {direction: outbound, top_n: 1}
features:
  age:           {type: integer, source: crm, label: Age, min: 16, max: 110}
  recency_days:  {type: integer, source: crm, label: Last purchase, unit: days ago, min: 0}
  arrears_days:  {type: integer, source: crm, label: Payment overdue, unit: days, min: 0}
  holds_card:    {type: boolean, source: crm, label: Holds the store card}
  email_consent: {type: boolean, source: crm, label: E-mail consent}
  segment:       {type: category, source: crm, label: Segment, values: [new, regular, vip]}
  clv:           {type: number, source: crm, label: Lifetime value, unit: EUR, min: 0}
actions:
  - {id: store_card, issue: growth, group: cards, channels: [web, email], margin: 20, retention_effect: 0.02,
     holds_feature: holds_card}
  - {id: pay_later, issue: payment, group: credit, channels: [web], margin: 15, order_value: 100,
     incentive: {kind: payment_terms, days: 30, annual_rate: 0.1}}
  - {id: reactivate_0, offer: reactivate, issue: retention, group: winback, channels: [web, email], margin: 30,
     order_value: 100, retention_effect: 0.1}
  - {id: reactivate_20, offer: reactivate, issue: retention, group: winback, channels: [web, email], margin: 30,
     order_value: 100, retention_effect: 0.1, incentive: {kind: voucher, percent: 20}}
  - {id: newsletter, issue: service, group: news, channels: [email], margin: 1, retention_effect: 0.01}
policies:
  eligibility:
    - name: email_needs_consent
      description: Marketing e-mail only with consent.
      exclude_if: channel == 'email' and not email_consent
      applies_to: {issues: [growth, retention]}
  applicability:
    - name: vip_no_newsletter
      description: VIPs get a personal newsletter instead.
      exclude_if: segment == 'vip'
      applies_to: {actions: [newsletter]}
  suitability:
    - name: no_credit_in_arrears
      description: No payment terms while a payment is overdue.
      exclude_if: arrears_days > 0
      applies_to: {actions: [pay_later]}
contact_policies:
  max_contacts: {email: {max: 2, period_days: 7}}
  suppression: {after_rejections: 3, within_days: 30, suppress_days: 30}
  never_offer_held_products: true
context_weights:
  - name: young_web
    description: Young customers on the web like cards.
    when: age < 30
    applies_to: {actions: [store_card]}
    weight: 1.5
levers:
  issues: {growth: 1.2}
kpi: {margin_weight: 1.0, retention_weight: 0.5, clv_feature: clv}
no_action: {threshold: 0.5}
models:
  params: {max_iter: 30}
"""


def tiny_truth(action: str, f: pd.DataFrame) -> np.ndarray:
    """True acceptance probabilities of the tiny shop (a simple, strong signal)."""
    lapsed = np.minimum(f["recency_days"].to_numpy() / 365, 1.0)
    base = {
        "store_card": -1.0 - 0.03 * (f["age"].to_numpy() - 30),
        "pay_later": -1.0 + 0.0 * lapsed,
        "reactivate_0": 1.5 - 5.0 * lapsed,  # active customers buy anyway, lapsed ones do not
        "reactivate_20": 1.6 - 1.0 * lapsed,  # the voucher brings lapsed customers back
        "newsletter": -0.5 + 0.0 * lapsed,
    }[action]
    return 1 / (1 + np.exp(-base))


def tiny_customers(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": [f"T{i:05d}" for i in range(n)],
        "channel": rng.choice(["web", "email"], n),
        "age": rng.integers(18, 80, n),
        "recency_days": rng.integers(0, 730, n),
        "arrears_days": np.where(rng.random(n) < 0.1, rng.integers(1, 60, n), 0),
        "holds_card": rng.random(n) < 0.3,
        "email_consent": rng.random(n) < 0.8,
        "segment": rng.choice(["new", "regular", "vip"], n),
        "clv": np.round(rng.uniform(0, 2000, n), 2),
    })


@pytest.fixture(scope="session")
def tiny_strategy():
    return parse_strategy(TINY_YAML, source="tiny.yaml")


def tiny_history(strategy, n: int = 3000, seed: int = 10, transform=None) -> pd.DataFrame:
    """Past offers of every action of a tiny-shop strategy (``n`` each, outcomes drawn from
    :func:`tiny_truth`); ``transform(frame, k)`` may change action ``k``'s rows."""
    rng = np.random.default_rng(1)
    parts = []
    for k, action in enumerate(strategy.actions):
        f = tiny_customers(n, seed=seed + k)
        f["channel"] = rng.choice(list(action.channels), len(f))
        f["action_id"] = action.id
        f["accepted"] = (rng.random(len(f)) < tiny_truth(action.id, f)).astype(int)
        parts.append(transform(f, k) if transform else f)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="session")
def tiny_models(tiny_strategy):
    return train_models(tiny_strategy, tiny_history(tiny_strategy))


@pytest.fixture(scope="session")
def tiny_engine(tiny_strategy, tiny_models):
    return Engine(tiny_strategy, tiny_models)


def request(**overrides):
    """One tiny-shop request as JSON; override features by keyword, or channel/contacts/rejections."""
    item = {
        "customer_id": "C1",
        "channel": "web",
        "features": {"age": 40, "recency_days": 30, "arrears_days": 0, "holds_card": False,
                     "email_consent": True, "segment": "regular", "clv": 800.0},
    }
    for k, v in overrides.items():
        if k in ("channel", "contacts", "rejections", "customer_id"):
            item[k] = v
        else:
            item["features"][k] = v
    return item


def decide_one(engine, item):
    req = Requests.from_dicts(engine.strategy, [item])
    return engine.decide(req)


def cell(batch, strategy, action_id, row=0):
    """The fate of one action in one decision, as a dict."""
    from decisioning.strategy import STAGES

    a = strategy.action_index(action_id)
    return {
        "stage": STAGES[batch.stage[row, a]],
        "rule": batch.rule_names[batch.rule[row, a]] if batch.rule[row, a] >= 0 else None,
        "reason": batch.reasons[batch.reason[row, a]] if batch.reason[row, a] >= 0 else None,
        "propensity": batch.propensity[row, a],
        "value": batch.value[row, a],
        "context_weight": batch.context_weight[row, a],
        "lever": batch.lever[row, a],
        "priority": batch.priority[row, a],
        "rank": int(batch.rank[row, a]),
        "selected": bool(batch.selected[row, a]),
    }


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple:
    """A small demo (2,000 customers of the retail scenario), run once per session: its log's
    path, its result and the progress it reported, as (label, done, total) tuples."""
    from klartext.jobs import run_demo

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    events: list[tuple[str, int, int]] = []
    result = run_demo(str(path), 2000, history_per_action=800, explain_sample=300,
                      progress=lambda label, done, total: events.append((label, done, total)))
    return path, result, events


@pytest.fixture(scope="session")
def demo_log(demo_run) -> Path:
    """The small demo's log, written once per session."""
    return demo_run[0]


def returning_customer(db: Path) -> tuple[str, int]:
    """A demo customer (raw id) with the most decisions among the first 200, and that number."""
    from decision_log.store import DecisionLog

    raw = [f"C{i:08d}" for i in range(1, 201)]
    with DecisionLog.open(db, read_only=True) as log:
        pseudo = list(log.pseudonymise(raw))
        counts = dict(log.con.execute("SELECT customer, count(*) FROM decisions WHERE customer IN "
                                      "(SELECT unnest(?::VARCHAR[])) GROUP BY 1", [pseudo]).fetchall())
    n, cust = max((counts.get(p, 0), r) for p, r in zip(pseudo, raw))
    return cust, n


@pytest.fixture
def demo_copy(demo_log, tmp_path) -> Path:
    """A private copy of the demo log (with its pseudonym key) that a test may change."""
    dst = tmp_path / "copy.duckdb"
    copy_log(demo_log, dst)
    return dst


def copy_log(src, dst) -> None:
    """A log with the files beside it: its pseudonym key, its customers' keys and its
    compliance register (where there are)."""
    shutil.copy(src, dst)
    for suffix in (".key", ".subject-keys", ".compliance.duckdb"):
        if Path(str(src) + suffix).exists():
            shutil.copy(str(src) + suffix, str(dst) + suffix)
    if Path(str(src) + ".shards").is_dir():
        shutil.copytree(str(src) + ".shards", str(dst) + ".shards")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dashboard(env: dict) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free port with ``env``, once it answers its health check:
    (the process, its URL).  Fails the test with Streamlit's output if it does not start."""
    root = Path(__file__).resolve().parent.parent
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(root / "app.py"), "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
         "--server.fileWatcherType", "none"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])


def stop(proc: subprocess.Popen, seconds: float = 10) -> None:
    """End a server a test started: asked first, killed if it does not go (Streamlit can sit
    on a SIGTERM while a browser session is open, and would outlive the test run)."""
    proc.terminate()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=seconds)


def children_of(pid: int) -> list[int]:
    """The processes ``pid`` started."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")
