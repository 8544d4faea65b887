"""Benchmark: the HTTP decision service under concurrent load, every decision logged.

Builds a demo log (``--customers``, 20,000 by default), starts ``klartext serve`` on it in a
child process, and drives it over loopback with 1, 8 and 32 concurrent keep-alive clients,
each sending ``--requests`` decision requests (real customers of the demo scenario, with
their contact history in the request).  Reports throughput and p50/p95/p99 latency as the
client sees it — including the journal write that makes each decision durable before the
answer (the DuckDB file takes it behind the answer) — and checks afterwards that every acknowledged decision is in the log with all its
candidates.  The in-run baseline is the same engine called in-process, one decision
validated, decided and committed at a time.  A fourth run repeats 8 clients while a reader
(what the live dashboard does) opens the freshest replica every second; it reports how old
the newest decision it saw was.  A fifth run repeats 8 clients while an operator activates a
canary for half the customers (``klartext strategy activate --share 0.5``) and rolls it back:
no 5xx, no lost acknowledgement, the p99 before, during and after each switch, and how long
the service took to follow.  Load starts once the service has made its two replicas.  Prints
one JSON object.

Targets on a 2-core machine: p99 ≤ 50 ms at 8 concurrent clients, ≥ 500 decisions/s, zero
acknowledged decisions lost.

With ``--workers 1,2`` it instead compares service processes (``klartext serve --workers N``;
1 is the single-process service, the baseline of that run): decisions/s and p50/p99 at 8 and
32 clients for each, and after each service stops (its workers' files sealed into shards)
every acknowledged decision is looked up in the log.  Goal of issue #21: ≥ 1,000
decisions/s with p99 ≤ 25 ms at 8 clients.  ``--rotate-after N`` also runs each worker
count > 1 with its workers' files rotated into shards every N decisions while the load runs
(the same count without rotation is that run's baseline); a client whose worker stopped for
its rotation connects again and sends the unanswered request again (counted as reconnects;
its latency includes the retry).

Usage: ``python benchmarks/bench_serve.py [--customers 20000] [--requests 300] [--workers 1,2]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from decision_log.shards import Manifest, root_of
from decision_log.store import DecisionLog
from decisioning.engine import Engine
from decisioning.inputs import Requests
from decisioning.scenarios import retail
from klartext.jobs import run_demo

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load(port: int, clients: int, per_client: int, items: list[dict], records: list | None = None) -> dict:
    """``clients`` keep-alive clients, ``per_client`` requests each; ``records`` receives
    (start time, latency s, HTTP status, strategy version) per request."""
    lat: list[float] = []
    ids: list[str] = []
    errors, reconnects = [0], [0]
    lock = threading.Lock()

    def run(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, my_ids, my_rec = [], [], []
        for i in range(per_client):
            body = json.dumps(items[(k * per_client + i) % len(items)])
            t = time.perf_counter()
            for attempt in range(50):
                try:
                    conn.request("POST", "/decide", body, {"content-type": "application/json"})
                    r = conn.getresponse()
                    data = r.read()
                    break
                except (http.client.HTTPException, OSError):  # its worker stopped (a rotation): unanswered, again
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    with lock:
                        reconnects[0] += 1
                    time.sleep(0.01 * attempt)
            else:
                raise RuntimeError("the service stopped answering")
            mine.append(time.perf_counter() - t)
            version = None
            if r.status == 200:
                answer = json.loads(data)
                my_ids.append(answer["decision_id"])
                version = answer["strategy_version"]
            else:
                with lock:
                    errors[0] += 1
            my_rec.append((t, mine[-1], r.status, version))
        conn.close()
        with lock:
            lat.extend(mine)
            ids.extend(my_ids)
            if records is not None:
                records.extend(my_rec)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {"clients": clients, "requests": len(lat), "errors": errors[0], "reconnects": reconnects[0],
            "decisions_per_s": round(len(ids) / wall),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "ids": ids}


def _klartext(*args: str) -> float:
    """Run a ``klartext`` command (as an operator would, beside the running service); its end time."""
    subprocess.run([sys.executable, "-m", "klartext.cli", *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter()


def _switch_run(port: int, db: str, per_client: int, items: list[dict]) -> dict:
    """8 clients while an operator activates a canary (half the customers) and later rolls it
    back: every request's status and version, p99 before, during and after each switch, and
    how long the service took to follow."""
    challenger = str(ROOT / "examples" / "challenger.yaml")
    _klartext("strategy", "propose", challenger, "--db", db, "--by", "bench-proposer")
    new = json.loads(subprocess.run([sys.executable, "-m", "klartext.cli", "strategy", "status", "--db", db, "--json"],
                                    cwd=ROOT, check=True, capture_output=True, text=True).stdout)["record"][-1]["version"]
    _klartext("strategy", "simulate", new[:8], "--db", db, "--decisions", "5000", "--boot", "50")
    _klartext("strategy", "approve", new[:8], "--db", db, "--by", "bench-approver", "--note", "benchmark")
    records: list = []
    marks: dict[str, float] = {}

    def operator() -> None:
        time.sleep(2.0)
        marks["activate_sent"] = time.perf_counter()
        marks["activate_done"] = _klartext("strategy", "activate", new[:8], "--db", db, "--share", "0.5")
        time.sleep(4.0)
        marks["rollback_sent"] = time.perf_counter()
        marks["rollback_done"] = _klartext("strategy", "rollback", "--db", db, "--note", "benchmark")

    op = threading.Thread(target=operator)
    op.start()
    res = _load(port, 8, per_client, items, records)
    op.join()
    rec = sorted(records)
    first_new = next((t for t, _l, _s, v in rec if v == new), None)
    last_new = max((t for t, _l, _s, v in rec if v == new), default=None)

    def p99(lo: float, hi: float) -> float | None:
        ms = [lat * 1000 for t, lat, _s, _v in rec if lo <= t < hi]
        return round(float(np.percentile(ms, 99)), 2) if ms else None

    t0, t1 = rec[0][0], rec[-1][0] + 1
    res.update({
        "switch": "canary 50% activated, then rolled back, by `klartext strategy` beside the running service",
        "http_5xx": sum(1 for r in rec if r[2] >= 500),
        "decided_by_new_version": sum(1 for r in rec if r[3] == new),
        # (0: the service had switched before the command's process returned)
        "follow_s_activate": None if first_new is None else round(max(0.0, first_new - marks["activate_done"]), 2),
        # (0: no request sent after the command returned was decided by the rolled-back version)
        "follow_s_rollback": None if last_new is None else round(max(0.0, last_new - marks["rollback_done"]), 2),
        "p99_ms_before": p99(t0, marks["activate_sent"]),
        "p99_ms_during_activation": p99(marks["activate_sent"], (first_new or marks["activate_done"]) + 1.0),
        "p99_ms_canary": p99((first_new or t1) + 1.0, marks["rollback_sent"]),
        "p99_ms_during_rollback": p99(marks["rollback_sent"], (last_new or marks["rollback_done"]) + 1.0),
        "p99_ms_after": p99((last_new or marks["rollback_done"]) + 1.0, t1)})
    return res


def _live_reader(db: str, stop: threading.Event, ages: list[float]) -> None:
    """What the dashboard does beside a service: once a second, open the freshest replica
    read-only, count the last minute's decisions, and note how old its newest decision is."""
    from decision_log import live

    while not stop.wait(1.0):
        got = live.open_replica(db)
        if got is None:
            continue
        con, _info = got
        try:
            newest = con.execute("SELECT epoch(max(ts)) FROM decisions").fetchall()[0][0]
            con.execute("SELECT count(*) FROM decisions WHERE ts > now() - INTERVAL 1 MINUTE").fetchall()
        finally:
            con.close()
        ages.append(time.time() - float(newest))


def _health(port: int) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/health")
    return json.loads(c.getresponse().read())


def _items(n: int = 2000) -> list[dict]:
    strategy = retail.load_demo_strategy()
    frame, contacts, rej, days = retail.generate_interactions(retail.generate_customers(n, seed=99), strategy, seed=99)
    req = Requests.from_frame(strategy, frame, contacts=contacts, rejections=rej, days_since_rejection=days)
    return [req.to_dict(strategy, i) for i in range(len(req))]


def _wait_ready(port: int, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read().decode(errors="replace")[-2000:])
        try:
            if _health(port).get("status") == "ok":
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the service did not start")


def _compare_workers(workers: list[int], args) -> None:
    """One demo log per worker count (a copy of one build), 8 and 32 clients against each."""
    import shutil
    import signal

    import pandas as pd

    items = _items()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        built = str(Path(tmp) / "built.duckdb")
        run_demo(built, args.customers, seal_inputs=args.inputs == "sealed")
        runs_of = [(w, None) for w in workers] + ([(w, args.rotate_after) for w in workers if w > 1]
                                                  if args.rotate_after else [])
        for w, rotate in runs_of:
            d = Path(tmp) / f"w{w}{'r' if rotate else ''}"
            d.mkdir()
            for f in Path(tmp).glob("built.duckdb*"):
                if f.is_file() and not f.name.endswith(".lock"):
                    shutil.copy(f, d / f.name.replace("built", "serve"))
            db = str(d / "serve.duckdb")
            port = _port()
            proc = subprocess.Popen([sys.executable, "-m", "klartext.cli", "serve", "--db", db, "--port", str(port),
                                     "--workers", str(w), "--rotate-after", str(rotate or 0)], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                _wait_ready(port, proc)
                time.sleep(3)  # every worker up and its replicas made
                _load(port, 8, 25, items)  # warm-up (each worker's first groups)
                shards_before = len(Manifest.load(root_of(db)).shards)
                runs = [_load(port, k, args.requests, items) for k in (8, 32)]
                rotations = len(Manifest.load(root_of(db)).shards) - shards_before
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=300)
            acked = [i for r in runs for i in r.pop("ids")]
            with DecisionLog.open(db, read_only=True) as log:
                log.con.register("acked", pd.DataFrame({"decision_id": acked}))
                found = log.con.execute("SELECT count(*) FROM decisions SEMI JOIN acked USING (decision_id)"
                                        ).fetchall()[0][0]
                ok = log.verify().ok
            out.append({"workers": w, "rotate_after": rotate, "rotations_during_load": rotations, "runs": runs,
                        "acknowledged": len(acked), "acknowledged_in_log": int(found), "verify_ok": ok})
    base = out[0]["runs"][0]["decisions_per_s"]
    for o in out:
        o["speedup_at_8_vs_first"] = round(o["runs"][0]["decisions_per_s"] / base, 2)
    best = max(out, key=lambda o: o["runs"][0]["decisions_per_s"])["runs"][0]
    print(json.dumps({
        "benchmark": "bench_serve --workers",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "inputs": args.inputs, "requests_per_client": args.requests, "services": out,
        "targets": {">=1000_decisions_per_s_at_8": best["decisions_per_s"] >= 1000, "p99<=25ms_at_8": best["p99_ms"] <= 25,
                    "zero_acknowledged_lost": all(o["acknowledged"] == o["acknowledged_in_log"] for o in out)},
    }, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=300, help="Requests per client.")
    ap.add_argument("--inputs", choices=["sealed", "clear"], default="sealed",
                    help="A log that seals each decision's inputs under its customer's key (the default) or one "
                         "that stores them in clear (to compare).")
    ap.add_argument("--workers", default=None, help="Compare service processes, e.g. 1,2 (see the docstring).")
    ap.add_argument("--rotate-after", type=int, default=0, metavar="DECISIONS",
                    help="With --workers: also run each worker count > 1 with `--rotate-after DECISIONS` (worker "
                         "files sealed into shards while the load runs), beside the same count without.")
    args = ap.parse_args()
    if args.workers:
        _compare_workers([int(w) for w in args.workers.split(",")], args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "serve.duckdb")
        run_demo(db, args.customers, seal_inputs=args.inputs == "sealed")
        strategy = retail.load_demo_strategy()
        items = _items()

        # baseline: the same engine in-process, one decision validated, decided and committed at a time
        with DecisionLog.open(db) as log:
            engine = Engine(strategy, log.latest_models_for(strategy))
            engine.decide(Requests.from_dicts(strategy, items[:50]))
            lat = []
            for item in items[:300]:
                t = time.perf_counter()
                b = engine.decide(Requests.from_dicts(strategy, [item]))
                log.append(b, strategy)
                lat.append(time.perf_counter() - t)
        base_ms = np.array(lat) * 1000

        port = _port()
        proc = subprocess.Popen([sys.executable, "-m", "klartext.cli", "serve", "--db", db, "--port", str(port)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _wait_ready(port, proc)
            for _ in range(600):  # steady state: the service has made its two live replicas
                if (_health(port).get("live_replicas") or {}).get("replicas", 0) >= 2:
                    break
                time.sleep(0.1)
            _load(port, 4, 25, items)  # warm-up
            runs = []
            for k, reader in ((1, False), (8, False), (32, False), (8, True)):
                before = _health(port)
                stop, seen = threading.Event(), []
                if reader:  # a dashboard beside the service: it reads the freshest replica every second
                    t_reader = threading.Thread(target=_live_reader, args=(db, stop, seen))
                    t_reader.start()
                runs.append(_load(port, k, args.requests, items))
                if reader:
                    stop.set()
                    t_reader.join()
                    # the first read finds the replica as the last reader left it (copying pauses
                    # while nobody reads); the replicator then catches up and follows the log
                    runs[-1]["live_reader"] = {
                        "reads": len(seen), "data_age_s_first_read": round(seen[0], 2) if seen else None,
                        "data_age_s_median": round(float(np.median(seen)), 2) if seen else None,
                        "data_age_s_last_5_reads": [round(x, 2) for x in seen[-5:]]}
                after = _health(port)
                groups = after["groups_committed"] - before["groups_committed"]
                runs[-1]["mean_group_size"] = round((after["logged_since_start"] - before["logged_since_start"])
                                                    / max(groups, 1), 2)
                runs[-1]["writer_ms_per_group"] = {
                    k2: round((after["writer_seconds"][k2] - before["writer_seconds"][k2]) * 1000 / max(groups, 1), 2)
                    for k2 in ("decide", "prepare", "log") if k2 in after["writer_seconds"]}
            runs.append(_switch_run(port, db, max(args.requests, 1200), items))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        acked = [i for r in runs for i in r.pop("ids")]
        with DecisionLog.open(db, read_only=True) as log:
            import pandas as pd

            log.con.register("acked", pd.DataFrame({"decision_id": acked}))
            found, cands = log.con.execute(
                "SELECT count(*), (SELECT count(*) FROM candidates SEMI JOIN acked USING (decision_id)) "
                "FROM decisions SEMI JOIN acked USING (decision_id)").fetchall()[0]
    at8 = runs[1]  # the target: the service on its own (run 4 repeats it with a live dashboard reading)
    print(json.dumps({
        "benchmark": "bench_serve",
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "inputs": args.inputs,
        "runs": runs,
        "baseline_in_process_single": {"p50_ms": round(float(np.percentile(base_ms, 50)), 2),
                                       "p99_ms": round(float(np.percentile(base_ms, 99)), 2),
                                       "decisions_per_s": round(1000 / float(base_ms.mean()))},
        "acknowledged": len(acked), "acknowledged_in_log": int(found), "candidate_rows": int(cands),
        "targets": {"p99<=50ms_at_8": at8["p99_ms"] <= 50, ">=500_decisions_per_s": max(
            r["decisions_per_s"] for r in runs) >= 500, "zero_acknowledged_lost": found == len(acked),
                    "switch_without_5xx": runs[-1]["http_5xx"] == 0},
    }, indent=2))


if __name__ == "__main__":
    main()
