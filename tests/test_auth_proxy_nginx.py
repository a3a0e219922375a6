"""Single sign-on through the shipped docs/deploy/nginx-sso.conf: real nginx asks a stand-in
sign-in service (``auth_request``) and tells real gunicorn who signed in (X-Forwarded-Email).

Browsers here connect from 127.0.0.2; nginx connects to gunicorn from 127.0.0.1, the one
address gunicorn believes (FORWARDED_ALLOW_IPS). The credentials file lists a viewer and an
operator who can sign in, and an admin who has no session: only impersonation could act as
that admin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.support.api import ADMIN
from tests.support.live import GunicornServer
from tests.support.nginx import SSO_SITE, CurlStream, NginxServer
from tests.support.processes import wait_until
from tests.support.sign_in import SignInService

pytestmark = pytest.mark.live

CLIENT = "127.0.0.2"  # the browsers' address, as nginx sees it
VIEWER = "alice@example.com"
OPERATOR = "olivia@example.com"
ADMIN_USER = "ada@example.com"  # listed as admin, but no session signs her in
UNKNOWN = "mallory@example.com"  # signs in, but the credentials file does not list her
# The identity provider may spell an email in capitals: the same user, the same name.
SESSIONS = {"alice": VIEWER, "olivia": OPERATOR, "OLIVIA": "Olivia@Example.COM",
            "mallory": UNKNOWN}
USERS = f"""\
[[user]]
email = "{VIEWER}"
role = "viewer"

[[user]]
email = "{OPERATOR}"
role = "operator"

[[user]]
email = "{ADMIN_USER}"
role = "admin"
"""
TICKS = 10
ENV = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1", "OPS_SSE_RETRY_MS": "100",
       "OPS_DEV_TICK_SECONDS": "0.2", "OPS_DEV_TICKS": str(TICKS),
       "OPS_AUTH_PROXY_HEADER": "X-Forwarded-Email", "FORWARDED_ALLOW_IPS": "127.0.0.1"}


@dataclasses.dataclass
class Stack:
    sign_in: SignInService
    gunicorn: GunicornServer
    nginx: NginxServer

    def browser(self, session: str | None = None, url: str | None = None) -> Browser:
        return Browser(url or self.nginx.url, session)

    def audit(self, **filters) -> list[dict]:
        """The audit trail's records, newest first, read with the admin token through nginx."""
        response = self.nginx.admin.get("/ops/audit", params=filters)
        assert response.status_code == 200, response.text
        return response.json()["records"]

    def task_count(self) -> int:
        response = self.nginx.admin.get("/ops/tasks", params={"limit": 200})
        assert response.status_code == 200, response.text
        return len(response.json()["tasks"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    credentials = tmp_path_factory.mktemp("sso") / "credentials.toml"
    credentials.write_text(USERS)
    with contextlib.ExitStack() as running:
        sign_in = running.enter_context(SignInService(SESSIONS))
        gunicorn = running.enter_context(
            GunicornServer({**ENV, "OPS_TOKENS_FILE": str(credentials)}))
        nginx = running.enter_context(
            NginxServer(gunicorn.port, site=SSO_SITE, sign_in_port=sign_in.port))
        yield Stack(sign_in, gunicorn, nginx)


class FromAddress(HTTPAdapter):
    """Connections from a chosen local address."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Browser:
    """What a browser signed in with ``Cookie: session=<session>`` sends, from 127.0.0.2.
    Changes carry the page's own Origin and ``Sec-Fetch-Site: same-origin`` unless told."""

    def __init__(self, url: str, session: str | None):
        self.url = url
        self.http = requests.Session()
        self.http.mount("http://", FromAddress(CLIENT))
        if session is not None:
            self.http.headers["Cookie"] = f"session={session}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, headers=None, **kwargs) -> requests.Response:
        same_origin = {"Origin": self.url, "Sec-Fetch-Site": "same-origin"}
        return self.http.post(self.url + path, headers={**same_origin, **(headers or {})},
                              timeout=10, **kwargs)

    def create(self, title: str) -> dict:
        response = self.post("/ops/tasks", json={"title": title})
        assert response.status_code == 201, response.text
        return response.json()


def raw_get(port: int, path: str, headers: list[tuple[str, str]]) -> tuple[int, str | None]:
    """GET from 127.0.0.2 with exactly these header lines (repeats kept); the status and
    the ``name`` of a JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                            source_address=(CLIENT, 0))
    try:
        connection.putrequest("GET", path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        name = json.loads(body).get("name") if response.getheader(
            "Content-Type", "").startswith("application/json") else None
        return response.status, name
    finally:
        connection.close()


def error(response: requests.Response) -> str:
    assert response.headers.get("Content-Type", "").startswith("application/json"), \
        f"not the app's answer: {response.status_code} {response.text[:200]}"
    return response.json()["error"]


def from_nginx(response: requests.Response) -> bool:
    """nginx's own answer (its HTML error page), not one the app made."""
    return (response.headers.get("Server", "").startswith("nginx")
            and response.headers.get("Content-Type", "").startswith("text/html"))


def test_a_viewer_lists_and_reads_but_may_not_create(stack):
    task_id = stack.nginx.admin.create("viewer's read")["id"]
    alice = stack.browser("alice")

    whoami = alice.get("/ops/whoami")
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["name"] == VIEWER
    assert (whoami.json()["role"], whoami.json()["via"]) == ("viewer", "proxy")
    assert whoami.json()["may"]["create"] is False
    listed = alice.get("/ops/tasks")
    assert listed.status_code == 200
    assert task_id in [task["id"] for task in listed.json()["tasks"]]
    assert alice.get(f"/ops/tasks/{task_id}").json()["title"] == "viewer's read"

    before = stack.task_count()
    refused = alice.post("/ops/tasks", json={"title": "not for a viewer"})
    assert refused.status_code == 403
    assert "operator role" in error(refused) and VIEWER in error(refused)
    assert alice.post(f"/ops/tasks/{task_id}/cancel").status_code == 403
    assert alice.get("/ops/audit").status_code == 403
    assert stack.task_count() == before


def test_an_operator_creates_and_cancels_as_their_email(stack):
    olivia = stack.browser("olivia")
    created = olivia.create("olivia's build")
    assert created["created_by"] == OPERATOR

    # The same-origin Origin (http://127.0.0.1:<port>) matches the Host nginx passed on.
    canceled = olivia.post(f"/ops/tasks/{created['id']}/cancel")
    assert canceled.status_code in (200, 202), canceled.text
    # Running: asked to stop (who asked is named once it has); queued: canceled at once.
    assert canceled.json()["cancel_requested"] or canceled.json()["canceled_by"] == OPERATOR

    def ended() -> dict | None:
        task = stack.nginx.admin.task(created["id"])
        return task if task["status"] in ("canceled", "failed", "succeeded") else None

    task = wait_until(ended, timeout=15, message="the canceled task to end")
    assert (task["status"], task["created_by"], task["canceled_by"]) == \
        ("canceled", OPERATOR, OPERATOR)
    mine = olivia.get("/ops/tasks", params={"created_by": OPERATOR}).json()["tasks"]
    assert created["id"] in [t["id"] for t in mine]


def test_a_user_is_named_as_the_credentials_file_writes_them_whatever_the_case(stack):
    shouting = stack.browser("OLIVIA")
    assert shouting.get("/ops/whoami").json()["name"] == OPERATOR
    task_id = shouting.create("in capitals")["id"]
    assert stack.nginx.admin.task(task_id)["created_by"] == OPERATOR
    assert [r["actor"] for r in stack.audit(task_id=task_id)] == [OPERATOR]
    mine = shouting.get("/ops/tasks", params={"created_by": OPERATOR}).json()["tasks"]
    assert task_id in [t["id"] for t in mine]


def test_without_a_session_nginx_answers_401_and_the_app_is_not_asked(stack):
    nobody = stack.browser()
    stranger = stack.browser("forged-session")
    asked = len(stack.sign_in.seen())
    for browser in (nobody, stranger):
        for answer in (browser.get("/ops/tasks"), browser.get("/ops/ui/"),
                       browser.post("/ops/tasks", json={"title": "x"}),
                       browser.get("/ops/tasks/1/stream")):
            assert answer.status_code == 401
            assert from_nginx(answer), answer.text[:200]
    assert len(stack.sign_in.seen()) == asked + 8  # one sign-in check each
    # Health checks need no sign-in.
    assert nobody.get("/healthz").status_code == 200
    assert nobody.get("/readyz").status_code == 200


def test_a_client_cannot_name_itself_through_nginx(stack):
    nobody, alice = stack.browser(), stack.browser("alice")
    stream = f"/ops/tasks/{stack.nginx.admin.create('watched')['id']}/stream"
    claims = [{"X-Forwarded-Email": ADMIN_USER}, {"x-forwarded-email": ADMIN_USER},
              {"X-FORWARDED-EMAIL": ADMIN_USER}, {"X-Forwarded_Email": ADMIN_USER}]
    for claim in claims:
        # Without a session: nginx refuses before the app sees anything.
        assert nobody.get("/ops/audit", headers=claim).status_code == 401
        # Signed in as a viewer: still the viewer, on the API and on the stream location.
        whoami = alice.get("/ops/whoami", headers=claim)
        assert whoami.json()["name"] == VIEWER, (claim, whoami.text)
        assert alice.get("/ops/audit", headers=claim).status_code == 403
        assert alice.post("/ops/tasks", json={"title": "x"}, headers=claim).status_code == 403
        # The stream's location too: claiming a user without a role would be a 403.
        unknown = {name: UNKNOWN for name in claim}
        with alice.get(stream, headers=unknown, stream=True) as opened:
            assert opened.status_code == 200, (claim, opened.text)
        # Prometheus's location asks no sign-in, and passes no claimed user either (nginx
        # admits 127.0.0.1 there, so ask from that address).
        metrics = requests.get(f"{stack.nginx.url}/metrics", headers=claim, timeout=10)
        assert metrics.status_code == 401, (claim, metrics.text)
    # The header twice, and a list in one.
    twice = raw_get(stack.nginx.port, "/ops/whoami", [
        ("Cookie", "session=alice"), ("X-Forwarded-Email", ADMIN_USER),
        ("X-Forwarded-Email", OPERATOR)])
    assert twice == (200, VIEWER)
    listed = alice.get("/ops/whoami", headers={"X-Forwarded-Email": f"{ADMIN_USER}, {OPERATOR}"})
    assert listed.json()["name"] == VIEWER
    # A made-up token gets past nginx's sign-in (scripts' tokens keep working) but no user
    # header goes with it: the app refuses the token.
    forged = nobody.get("/ops/audit", headers={"X-Admin-Token": "made-up",
                                               "X-Forwarded-Email": ADMIN_USER})
    assert forged.status_code == 401
    assert "invalid X-Admin-Token" in error(forged)


def test_the_user_header_straight_to_gunicorn_from_another_address_is_refused(stack):
    direct = stack.browser("olivia", url=stack.gunicorn.url)  # from 127.0.0.2, not trusted
    before = stack.task_count()
    answer = direct.get("/ops/whoami", headers={"X-Forwarded-Email": ADMIN_USER})
    assert answer.status_code == 401
    assert "believed only from a trusted proxy" in error(answer)
    posted = direct.post("/ops/tasks", json={"title": "x"},
                         headers={"X-Forwarded-Email": OPERATOR})
    assert posted.status_code == 401
    assert stack.task_count() == before
    # The control: the same header from 127.0.0.1 (nginx's address) is believed.
    trusted = requests.get(f"{stack.gunicorn.url}/ops/whoami",
                           headers={"X-Forwarded-Email": VIEWER}, timeout=10)
    assert trusted.json()["name"] == VIEWER

    refusals = [r for r in stack.audit(action="auth.refused")
                if r["actor"] == ADMIN_USER and r["client"] == CLIENT]
    assert refusals, stack.audit(action="auth.refused")
    assert "trusted proxy" in refusals[0]["detail"]["reason"]


def test_a_cross_site_change_by_a_signed_in_operator_is_refused(stack):
    olivia = stack.browser("olivia")
    task_id = olivia.create("not to be canceled from elsewhere")["id"]
    before = stack.task_count()
    cross_site = [{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
                  {"Origin": "https://evil.example"},  # an older browser: no Sec-Fetch-Site
                  {"Origin": "null"},
                  {"Sec-Fetch-Site": "cross-site", "Origin": olivia.url},
                  {"Origin": stack.gunicorn.url},  # another port of the same host
                  {"Origin": olivia.url.replace("http:", "https:")}]
    for headers in cross_site:
        created = olivia.post("/ops/tasks", json={"title": "forged"}, headers=headers)
        assert created.status_code == 403, (headers, created.text)
        assert "cross-site" in error(created)
        canceled = olivia.post(f"/ops/tasks/{task_id}/cancel", headers=headers)
        assert canceled.status_code == 403, (headers, canceled.text)
    assert stack.task_count() == before
    task = stack.nginx.admin.task(task_id)
    assert task["cancel_requested"] is False and task["canceled_by"] is None
    # Reading is no change: a cross-site GET still answers (what it reads is not the
    # attacker's to see: no CORS header lets their page read it).
    read = olivia.get("/ops/tasks", headers={"Origin": "https://evil.example",
                                             "Sec-Fetch-Site": "cross-site"})
    assert read.status_code == 200
    assert "Access-Control-Allow-Origin" not in read.headers


def test_a_signed_in_user_the_credentials_file_does_not_list_gets_403(stack):
    mallory = stack.browser("mallory")
    for answer in (mallory.get("/ops/tasks"), mallory.get("/ops/whoami"),
                   mallory.post("/ops/tasks", json={"title": "x"})):
        assert answer.status_code == 403
        assert UNKNOWN in error(answer) and "no role" in error(answer)


def test_a_viewer_streams_through_nginx_with_only_the_sign_in_cookie(stack, tmp_path):
    task_id = stack.browser("olivia").create("streamed to a viewer")["id"]
    headers_file = tmp_path / "headers"
    url = f"{stack.nginx.url}/ops/tasks/{task_id}/stream"
    with CurlStream(url, "--interface", CLIENT, "-H", "Cookie: session=alice",
                    "-H", "Accept: text/event-stream", "-D", str(headers_file)) as curl:
        assert curl.wait_exit(timeout=30) == 0
    headers = headers_file.read_text().lower()
    assert headers.startswith("http/1.1 200"), headers
    assert "content-type: text/event-stream" in headers
    assert curl.kinds == ["created", "status"] + ["tick"] * TICKS + ["done"]
    ticks = [curl.arrival("tick", n) for n in (1, TICKS)]
    assert ticks[1] - ticks[0] > 0.9, f"ticks 0.2 s apart arrived at once: {curl.events}"
    # Without the cookie the stream is nginx's 401, whatever the app would say.
    with CurlStream(url, "--interface", CLIENT, "-D", str(headers_file)) as curl:
        assert curl.wait_exit(timeout=10) == 0
    assert headers_file.read_text().startswith("HTTP/1.1 401")


def test_the_audit_trail_names_the_user_and_the_client_nginx_saw(stack):
    task_id = stack.browser("olivia").create("audited")["id"]
    stack.browser("alice").post("/ops/tasks", json={"title": "refused"})

    created = stack.audit(action="task.create", task_id=task_id)
    assert len(created) == 1, created
    assert (created[0]["actor"], created[0]["outcome"], created[0]["client"]) == \
        (OPERATOR, "ok", CLIENT)
    denied = [r for r in stack.audit(action="task.create", actor=VIEWER)
              if r["outcome"] == "denied"]
    assert denied and denied[0]["client"] == CLIENT, denied
    assert denied[0]["detail"]["status"] == 403


def test_tokens_never_reach_the_sign_in_service(stack):
    """Scripts keep their X-Admin-Token through nginx; the sign-in service never sees one."""
    assert stack.nginx.admin.get("/ops/stats").status_code == 200
    with_cookie = stack.browser("alice").get("/ops/stats", headers={"X-Admin-Token": ADMIN})
    assert with_cookie.status_code == 200  # the token decides, not the cookie
    seen = stack.sign_in.seen()
    assert seen
    assert not [r for r in seen if "x-admin-token" in r or ADMIN in str(r)]
    assert not [r for r in seen if "x-forwarded-email" in r]
    assert all(r["path"] == "/oauth2/auth" and r["x-original-uri"] for r in seen)


def test_a_request_line_to_the_internal_location_is_refused(stack):
    # internal: no client reaches it, signed in or with a token (which /_auth lets through).
    assert stack.browser("alice").get("/_auth").status_code == 404
    assert raw_get(stack.nginx.port, "/_auth", [("X-Admin-Token", "x")]) == (404, None)
