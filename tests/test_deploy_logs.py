"""The real gunicorn log, after every kind of credential was used, holds none of them."""

from __future__ import annotations

import json

import pytest
import requests

from tests.support.api import ADMIN, SECRET
from tests.support.live import GunicornServer
from tests.support.sse import DEV_KINDS, events

pytestmark = pytest.mark.live

METRICS_TOKEN = "test-metrics-token-0123456789"
WRONG = "wrong-but-secret-looking-value-42"
# Asks gunicorn for every atom a credential could hide in.
LEAKY_ACCESS_FORMAT = ('%(h)s "%(r)s" %(s)s q=%(q)s admin=%({x-admin-token}i)s '
                       'auth=%({authorization}i)s raw=%({raw_uri}e)s')


@pytest.mark.parametrize("json_logs", ["0", "1"], ids=["text", "json"])
def test_no_credential_reaches_the_log(json_logs):
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_STREAM_SECRET": SECRET, "DEV_LOCAL_LLM": "1",
           "OPS_DEV_TICK_SECONDS": "0.01", "OPS_METRICS_TOKEN": METRICS_TOKEN,
           "OPS_ACCESS_LOG": "-", "OPS_LOG_LEVEL": "debug", "OPS_LOG_JSON": json_logs,
           "OPS_KEEPALIVE": "1"}  # gunicorn's graceful stop waits for idle connections
    with GunicornServer(env, args=["--access-logformat", LEAKY_ACCESS_FORMAT]) as server:
        url = server.url
        admin = {"X-Admin-Token": ADMIN}
        task = requests.post(f"{url}/ops/tasks", json={"title": "t"}, headers=admin).json()
        stream = f"{url}/ops/tasks/{task['id']}/stream"
        token = task["stream_token"]
        minted = requests.post(f"{url}/ops/stream_tokens", json={"task_id": task["id"]},
                               headers=admin).json()["token"]
        answers = {
            "header": requests.get(stream, headers=admin),
            "stream token": requests.get(f"{stream}?token={token}"),
            "minted token, name percent-encoded": get_as_written(f"{stream}?%74oken={minted}"),
            "dev admin_token": requests.get(f"{stream}?last_event_id=0&admin_token={ADMIN}"),
            "metrics token": requests.get(f"{url}/metrics",
                                          headers={"Authorization": f"Bearer {METRICS_TOKEN}"}),
            "metrics as admin": requests.get(f"{url}/metrics", headers=admin),
        }
        refused = [requests.get(f"{stream}?admin_token={WRONG}"),
                   requests.get(f"{url}/ops/tasks", headers={"X-Admin-Token": WRONG}),
                   requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {WRONG}"})]
        server.stop()  # flushes every line
        log = server.log()

    for name, answer in answers.items():
        assert answer.status_code == 200, name
        if "stream" in answer.headers.get("Content-Type", ""):
            assert [e["kind"] for e in events(answer.text)] == DEV_KINDS, name
    assert [r.status_code for r in refused] == [401, 401, 401]
    for secret in (ADMIN, SECRET, METRICS_TOKEN, WRONG, token, minted):
        assert secret not in log
    # Something was logged: the request lines, with the credentials blanked out.
    assert log.count("/stream?token=[redacted]") >= 2  # app line and access line
    assert "%74oken=[redacted]" in log
    assert "admin_token=[redacted]" in log
    assert "admin=[redacted]" in log and "auth=[redacted]" in log
    if json_logs == "1":
        app_lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert {"app.requests", "app.tasks", "gunicorn.access"} <= {e["logger"] for e in app_lines}


def get_as_written(url: str) -> requests.Response:
    """GET ``url`` without requests normalising its escapes (it would turn %74 into t)."""
    request = requests.Request("GET", url).prepare()
    request.url = url
    with requests.Session() as session:
        return session.send(request)
