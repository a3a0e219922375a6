"""Headers on every answer, and CORS only for allowed origins."""

import pytest

from tests.support.api import ADMIN


@pytest.mark.parametrize("path", ["/ops/tasks", "/ops/tasks/999", "/healthz", "/nowhere"])
def test_every_answer_has_security_headers(admin, path):
    response = admin.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


def test_streams_keep_no_cache(admin):
    task_id = admin.create()["id"]
    response = admin.get(f"/ops/tasks/{task_id}/stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_no_cors_by_default(admin):
    response = admin.get("/ops/tasks", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_allowed_origin_gets_cors_and_preflight(admin_for):
    admin = admin_for(cors_origins=frozenset({"https://ops.example"}))
    response = admin.get("/ops/tasks", headers={"Origin": "https://ops.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://ops.example"
    assert "Origin" in response.headers["Vary"]
    other = admin.get("/ops/tasks", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = admin.client.options("/ops/tasks", headers={
        "Origin": "https://ops.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-admin-token, content-type"})
    assert preflight.status_code == 200
    assert "X-Admin-Token" in preflight.headers["Access-Control-Allow-Headers"]
    assert ADMIN not in preflight.get_data(as_text=True)
