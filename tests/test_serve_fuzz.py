"""Fuzz the decision service from its own OpenAPI spec (schemathesis): never a 500, and every
answer conforms to the spec's status codes."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402  (after the optional import)
from starlette.testclient import TestClient  # noqa: E402

from conftest import copy_log  # noqa: E402
from klartext.serve import create_app  # noqa: E402


@pytest.fixture(scope="module")
def app(demo_log, tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb"
    copy_log(demo_log, db)
    application = create_app(str(db))
    with TestClient(application):  # runs the lifespan: the service owns the log while fuzzed
        yield application


def test_fuzz_the_api_from_its_openapi_spec(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    seen: set[tuple[str, int]] = set()
    from hypothesis import given

    def fuzz(operation) -> None:
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call()
            seen.add((operation.label, response.status_code))
            if response.status_code >= 500:
                failures.append((operation.label, response.status_code, response.text[:300]))

        run()

    labels = []
    for op in schema.get_all_operations():
        operation = op.ok()
        labels.append(operation.label)
        fuzz(operation)
    assert {"POST /decide", "POST /outcome", "GET /decisions/{decision_id}", "GET /health"} <= set(labels)
    assert ("POST /decide", 422) in seen and ("GET /health", 200) in seen  # the fuzzer reached the API
    assert failures == []
