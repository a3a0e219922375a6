"""Calling the API as the admin: one token, the Flask test client's ``Admin`` and a live
server's ``LiveAdmin``."""

from __future__ import annotations

import requests

from app import Settings

ADMIN = "test-admin-token-0123456789abc"
SECRET = "test-stream-secret-0123456789"
HEADERS = {"X-Admin-Token": ADMIN}


def make_settings(**overrides) -> Settings:
    """Settings for a test app: the admin token, dev mode, fast ticks and heartbeats."""
    values = dict(admin_token=ADMIN, dev_mode=True, stream_secrets=(SECRET,),
                  dev_tick_seconds=0.01, heartbeat_seconds=0.2, workers=4, queue_size=10)
    values.update(overrides)
    return Settings(**values)


def live_env(**overrides: str) -> dict[str, str]:
    """The environment of a live server with the admin token and stream secret above."""
    return {"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_STREAM_SECRET": SECRET, **overrides}


class Admin:
    """Calls the API as an admin through the test client."""

    def __init__(self, client):
        self.client = client
        self.headers = dict(HEADERS)

    def create(self, title="Build X", **fields):
        response = self.client.post("/ops/tasks", json={"title": title, **fields},
                                    headers=self.headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def get(self, path, headers=None, **kwargs):
        return self.client.get(path, headers={**self.headers, **(headers or {})}, **kwargs)

    def post(self, path, headers=None, **kwargs):
        return self.client.post(path, headers={**self.headers, **(headers or {})}, **kwargs)


class LiveAdmin:
    """Calls a running server's API (``url``: gunicorn's, or nginx's in front of it) as an
    admin, with requests; every call has a timeout."""

    def __init__(self, url: str, token: str = ADMIN, timeout: float = 10):
        self.url = url
        self.headers = {"X-Admin-Token": token}
        self.timeout = timeout

    def request(self, method: str, path: str, headers=None, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return requests.request(method, self.url + path,
                                headers={**self.headers, **(headers or {})}, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def create(self, title: str = "Build X", **fields) -> dict:
        """Create a task (201 or the test fails); its JSON."""
        response = self.post("/ops/tasks", json={"title": title, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def task(self, task_id: int) -> dict:
        response = self.get(f"/ops/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def cancel(self, task_id: int) -> requests.Response:
        return self.post(f"/ops/tasks/{task_id}/cancel")

    def stats(self) -> dict:
        return self.get("/ops/stats").json()

    def stream(self, task_id: int, headers=None, timeout: float = 30,
               **kwargs) -> requests.Response:
        """The task's event stream, open for reading (a context manager)."""
        return self.get(f"/ops/tasks/{task_id}/stream", headers=headers, stream=True,
                        timeout=timeout, **kwargs)
