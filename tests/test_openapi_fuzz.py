"""schemathesis against the live server, from the description it serves (docs/openapi.yaml).

Run 1 sends the admin token: no answer is a 5xx, and every answer (status, content type,
headers, body, each event of a stream) matches the description. Run 2 sends no credential:
every answer is 401 (tests/support/openapi_checks.py names the three answers that come before
the credential is read). The stream endpoint is fuzzed too: dev tasks end in a few ticks and a
stream lasts at most a second, so no call hangs; tests/test_openapi.py and the test below
cover the answers no random request reaches (a stream token for another task, 403).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest
import requests
import schemathesis
import yaml

from tests.support.api import ADMIN, HEADERS
from tests.support.live import GunicornServer
from tests.support.processes import ROOT
from tests.support.runners import RECIPES

pytestmark = [pytest.mark.live, pytest.mark.slow]

METRICS_TOKEN = "fuzz-metrics-token-0123456789"
SEED = 20261128
EXAMPLES = 40  # per operation and phase
REFUSED_EXAMPLES = 15  # without a token every answer is the same 401: fewer cases suffice
CHECKS = [
    "--checks", "all",
    # Valid by the description is not always accepted, and rightly: whether a recipe exists
    # and which parameters it takes comes from OPS_RECIPES, not from the description (422).
    # Status, schema and negative-data checks still judge those answers.
    "--exclude-checks", "positive_data_acceptance,"
    # There is one admin token: no second user whose objects could leak to the first.
    "object_level_authorization",
]
SAMPLE = re.compile(r'^ops_http_request_duration_seconds_count\{(.*)\} ([0-9.e+]+)$', re.M)


@pytest.fixture(scope="module")
def server():
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1",
           "OPS_STREAM_SECRET": "fuzz-stream-secret-0123456789",
           "OPS_METRICS_TOKEN": METRICS_TOKEN,
           "OPS_RECIPES": str(RECIPES),  # recipe names and params
           # dev tasks end within 50 ms; a stream of a running task ends within a second
           "OPS_DEV_TICK_SECONDS": "0.01", "OPS_HEARTBEAT_SECONDS": "0.1",
           "OPS_STREAM_MAX_SECONDS": "1"}
    with GunicornServer(env) as server:
        yield server


def run_schemathesis(server, tmp_path, *args, hooks: bool = False, examples: int = EXAMPLES):
    """One ``schemathesis run`` of the served description; returns (exit code, output, report)."""
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")}
    if hooks:
        env["SCHEMATHESIS_HOOKS"] = str(ROOT / "tests" / "support" / "openapi_checks.py")
    command = [sys.executable, "-m", "schemathesis.cli", "run",
               f"{server.url}/ops/openapi.json", "--seed", str(SEED),
               "--max-examples", str(examples), "--workers", "1",
               "--generation-database", "none",  # the same cases every run
               "--suppress-health-check", "too_slow",  # the machine is shared; timing varies
               "--request-timeout", "10",  # a stream that did not end fails, not hangs
               "--report", "json", "--report-json-path", str(report), "--no-color", *args]
    # In a temporary folder: schemathesis and hypothesis keep caches in the current one.
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    output = result.stdout + result.stderr
    assert report.exists(), output[-5000:]
    return result.returncode, output, json.loads(report.read_text())


def operations() -> list[tuple[str, str, list[str]]]:
    """(method, path, tags) of every operation the description lists."""
    document = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    return [(method.upper(), path, operation.get("tags", []))
            for path, item in document["paths"].items()
            for method, operation in item.items() if method in {"get", "post"}]


def answers(server) -> Counter:
    """Requests answered so far, by (method, route, status), from the server's own metrics."""
    text = requests.get(f"{server.url}/metrics", headers={"Authorization":
                        f"Bearer {METRICS_TOKEN}"}, timeout=10).text
    counts = Counter()
    for labels, value in SAMPLE.findall(text):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        route = fields["endpoint"].replace("<task_id:task_id>", "{task_id}")
        counts[fields["method"], route, int(fields["status"])] += int(float(value))
    return counts


def test_every_answer_with_the_admin_token_matches_the_description(server, tmp_path):
    before = answers(server)
    code, output, report = run_schemathesis(server, tmp_path, "-H", f"X-Admin-Token: {ADMIN}",
                                            *CHECKS)
    assert code == 0, output[-15000:]
    # All but the one that serves the description, which schemathesis reads and leaves out.
    assert report["operations"]["tested"] == len(operations()) - 1 == 20, output
    assert report["test_cases"]["generated"] > 13 * EXAMPLES, report["test_cases"]
    assert ADMIN not in output  # schemathesis prints [Filtered]; nor did the server echo it

    during = answers(server) - before
    assert not [key for key in during if key[2] >= 500], during
    # Each operation was reached past its checks at least once: not only 4xx were fuzzed.
    # (A cancel's 409 counts: dev tasks end within 50 ms, so most cancels find them ended;
    # so does the 302 of the routes that lead to the dashboard.)
    succeeded = {(m, r) for m, r, status in during if 200 <= status < 400 or status == 409}
    for method, path, _ in operations():
        assert (method, path) in succeeded, (method, path, during)
    assert "Traceback" not in server.log(), server.log()[-5000:]


def test_every_answer_without_a_token_is_401(server, tmp_path):
    before = answers(server)
    code, output, report = run_schemathesis(
        server, tmp_path, "--checks", "refused_without_credentials",
        "--exclude-tag", "public",  # /healthz, /readyz, the dashboard's page, the description
        hooks=True, examples=REFUSED_EXAMPLES)
    assert code == 0, output[-15000:]
    gated = [op for op in operations() if "public" not in op[2]]
    assert report["operations"]["tested"] == len(gated) == 15, output
    during = answers(server) - before
    statuses = Counter()
    for (_, _, status), count in during.items():
        statuses[status] += count
    assert statuses[401] > len(gated) * REFUSED_EXAMPLES, statuses
    assert set(statuses) <= {200, 401, 404, 405, 414}, statuses
    # 200 only to OPTIONS (CORS preflight), to schemathesis reading the description, and to
    # this test's own reading of /metrics (with the metrics token).
    expected = {("GET", "/ops/openapi.json"), ("GET", "/metrics")}
    assert not [(method, route) for method, route, status in during
                if status == 200 and method != "OPTIONS" and (method, route) not in expected]


def test_stream_answers_match_the_description(server):
    """The stream's answers that random requests do not reach, judged by the description."""
    described = schemathesis.openapi.from_url(f"{server.url}/ops/openapi.json")
    stream = described["/ops/tasks/{task_id}/stream"]["GET"]
    admin = HEADERS
    mine, other = server.admin.create("a"), server.admin.create("b")
    url = f"{server.url}/ops/tasks/{mine['id']}/stream"
    cases = [
        ({}, {}, 401),
        ({"token": "v1.1.1.forged"}, {}, 401),
        ({"token": other["stream_token"]}, {}, 403),
        ({"admin_token": "wrong"}, {}, 401),
        ({"last_event_id": "-1"}, admin, 422),
        ({}, {**admin, "Last-Event-ID": "x"}, 422),
        ({"token": mine["stream_token"]}, {}, 200),
        ({"admin_token": ADMIN}, {}, 200),  # dev mode
        ({"last_event_id": "1"}, admin, 200),
    ]
    for query, headers, status in cases:
        response = requests.get(url, params=query, headers=headers, timeout=10)
        assert response.status_code == status, (query, headers, response.text)
        stream.validate_response(response)
        if status == 200:
            kinds = re.findall(r"^event: (\w+)$", response.text, re.M)
            assert kinds[-1] == "done", response.text
    missing = requests.get(f"{server.url}/ops/tasks/{2**62}/stream", headers=admin, timeout=10)
    assert missing.status_code == 404
    stream.validate_response(missing)
