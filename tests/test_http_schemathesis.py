"""Property-based conformance of the running server to its own /openapi.json (schemathesis).

Every documented operation gets a bounded number of generated requests (valid and
invalid), sent with a valid token, and every built-in check runs on the answers: no 5xx,
documented status codes, content types, headers and bodies, invalid input rejected.
Kept small so the module runs in well under a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

import httpx  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from filetier import __version__  # noqa: E402
from filetier.interfaces.http.openapi import openapi_document  # noqa: E402
from tests.support.http import (  # noqa: E402
    ALICE,
    METRICS,
    METRICS_TOKEN,
    TOKENS,
    LiveServer,
    upload,
)
from tests.support.prometheus_text import values  # noqa: E402

MAX_EXAMPLES = 100


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("schemathesis") / "home"
    with LiveServer(
        home, {"FILETIER_API_TOKENS": TOKENS, "FILETIER_METRICS_TOKEN": METRICS_TOKEN}
    ) as server:
        with server.client(ALICE) as client:  # some real files for the generated ids to miss
            for n in range(3):
                upload(client, f"file {n}".encode(), f"f{n}.txt")
        yield server


# The document is static; the server must serve exactly this one (checked below), so it is
# loaded here, at collection, and the generated requests go to the live server.
# The token goes in through schemathesis' own auth support, so that it knows which requests
# it made deliberately unauthenticated (and checks those get a 401).
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {"auth": {"openapi": {"bearerAuth": {"bearer": ALICE}}}}
)
schema = schemathesis.openapi.from_dict(openapi_document(__version__), config=CONFIG)


def test_the_server_serves_this_document(live: LiveServer) -> None:
    assert httpx.get(f"{live.url}/openapi.json").json() == json.loads(
        json.dumps(openapi_document(__version__))
    )


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_api_conforms_to_its_openapi_document(case: Any, live: LiveServer) -> None:
    case.call_and_validate(base_url=live.url, timeout=30)


def test_the_generated_requests_reached_the_routes(live: LiveServer) -> None:
    """Runs after the generated tests: they were authenticated, and most got through."""
    text = httpx.get(f"{live.url}/metrics", headers=METRICS).text
    answered = {
        (labels["route"], labels["method"], labels["status"]): int(n)
        for labels, n in values(text, "filetier_http_requests_total")
    }
    ok = {(r, m) for (r, m, s), n in answered.items() if s.startswith("2") and n}
    assert {("/v1/files", "GET"), ("/v1/files", "POST")} <= ok
    unauthorized = sum(n for (r, _m, s), n in answered.items() if s == "401")
    total = sum(n for (r, _m, _s), n in answered.items() if r.startswith("/v1"))
    assert unauthorized < total / 2
    assert not any(s.startswith("5") for (_r, _m, s) in answered)
