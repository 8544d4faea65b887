"""Fuzz: the decision service against hostile bodies, at the size the security issue asks for.

Builds a small demo log, then sends (in-process, through Starlette's test client, so the
service's own code and DuckDB writes run exactly as under uvicorn):

* ``--mutations`` requests (10,000 by default) made from valid ``/decide`` and ``/outcome``
  bodies with one field changed to a hostile value (huge and non-finite numbers, wrong JSON
  types, long and odd text, unknown actions and decisions, markdown and HTML);
* schemathesis cases generated from the service's own OpenAPI spec (``--schemathesis`` per
  operation).

It counts the answers by status, and checks that no answer is a 5xx, that every refusal has
the documented ``{"error", "hint"}`` shape, that the log holds exactly one decision per
accepted ``/decide`` (rejects log nothing), and that the log still verifies.  Prints one JSON
object; exits 1 if any check fails.

Usage: ``python benchmarks/fuzz_serve.py [--mutations 10000] [--schemathesis 300]``
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOSTILE = [None, True, False, -1, 0, 2**31, 2**63, 2**64, -2**63 - 1, 10**40, 1e308, -1e308, float("nan"),
           float("inf"), float("-inf"), 1.5, "", "x" * 5000, "Kundin Ä", "NaN", "![x](https://evil.example/p.png)",
           "<script>alert(1)</script>", "\u0000", "'; DROP TABLE decisions; --", [], {}, [1, 2], {"a": 1},
           {"count": 2**70, "days_since_last": -1}]


def mutate(rng: random.Random, base: dict, extra_paths: list[tuple]) -> dict:
    body = copy.deepcopy(base)
    paths = [(k,) for k in base] + extra_paths
    path = rng.choice(paths)
    where = body
    for k in path[:-1]:
        if not isinstance(where.get(k), dict):
            where[k] = {}
        where = where[k]
    if rng.random() < 0.05:
        where.pop(path[-1], None)  # a missing field
    else:
        where[path[-1]] = rng.choice(HOSTILE)
    return body


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--mutations", type=int, default=10_000)
    ap.add_argument("--schemathesis", type=int, default=300, help="examples per operation")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    from fastapi.testclient import TestClient

    from klartext.jobs import run_demo
    from klartext.serve import create_app

    tmp = Path(tempfile.mkdtemp(prefix="klartext-fuzz-"))
    db = tmp / "fuzz.duckdb"
    t0 = time.perf_counter()
    run_demo(str(db), args.customers, history_per_action=600, explain_sample=0)
    customer = json.loads((ROOT / "examples" / "customer.json").read_text())
    rng = random.Random(args.seed)
    statuses: dict[str, int] = {}
    problems: list[str] = []
    accepted = 0
    app = create_app(str(db))
    with TestClient(app, raise_server_exceptions=False) as c:
        log = app.state.service().log
        n0 = log.con.cursor().execute("SELECT count(*) FROM decisions").fetchall()[0][0]
        did = c.post("/decide", json=customer).json()["decision_id"]
        accepted += 1
        outcome = {"decision_id": did, "action_id": None, "outcome": "accepted", "revenue": 10.0, "margin": 2.0,
                   "churned": False}
        feature_paths = [("features", k) for k in customer["features"]]
        t1 = time.perf_counter()
        for i in range(args.mutations):
            if i % 4 == 3:
                body, url = mutate(rng, outcome, []), "/outcome"
            else:
                body, url = mutate(rng, customer, feature_paths + [("contacts", "web"), ("rejections", "winback_20")]), \
                    "/decide"
            r = c.post(url, content=json.dumps(body, allow_nan=True).encode(), headers={"content-type": "application/json"})
            key = f"{url} {r.status_code}"
            statuses[key] = statuses.get(key, 0) + 1
            if r.status_code >= 500:
                problems.append(f"{url} {r.status_code}: {body!r:.200} -> {r.text[:200]}")
            elif r.status_code >= 400:
                try:
                    shape = set(r.json())
                except ValueError:
                    shape = set()
                if shape != {"error", "hint"}:
                    problems.append(f"{url} {r.status_code} not in the documented shape: {r.text[:200]}")
            elif url == "/decide":
                accepted += 1
        mutation_s = time.perf_counter() - t1
        # schemathesis from the OpenAPI spec
        import schemathesis
        from hypothesis import HealthCheck, given, settings

        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        st_cases = {"n": 0}

        def fuzz(operation) -> None:
            @settings(max_examples=args.schemathesis, deadline=None, suppress_health_check=list(HealthCheck),
                      database=None)
            @given(case=operation.as_strategy())
            def run(case):
                response = case.call()
                st_cases["n"] += 1
                key = f"schemathesis {operation.label} {response.status_code}"
                statuses[key] = statuses.get(key, 0) + 1
                if response.status_code >= 500:
                    problems.append(f"schemathesis {operation.label} {response.status_code}: {response.text[:200]}")

            run()

        t2 = time.perf_counter()
        for op in schema.get_all_operations():
            fuzz(op.ok())
        schemathesis_s = time.perf_counter() - t2
        decided_by_schemathesis = sum(v for k, v in statuses.items() if k == "schemathesis POST /decide 200")
        n1 = log.con.cursor().execute("SELECT count(*) FROM decisions").fetchall()[0][0]
        if n1 - n0 != accepted + decided_by_schemathesis:
            problems.append(f"the log grew by {n1 - n0} decisions for {accepted + decided_by_schemathesis} accepted")
        res = log.verify()  # through the service's own connection: it holds the file
    if not res.ok:
        problems.append(f"verify failed: {res.problem}")
    print(json.dumps({
        "benchmark": "fuzz_serve", "mutations": args.mutations, "schemathesis_cases": st_cases["n"],
        "statuses": dict(sorted(statuses.items())), "five_xx": sum(v for k, v in statuses.items() if k.split()[-1] >= "500"),
        "accepted_decisions": accepted, "log_verifies": res.ok, "problems": problems[:20],
        "seconds": {"setup": round(t1 - t0, 1), "mutations": round(mutation_s, 1), "schemathesis": round(schemathesis_s, 1)},
    }, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
