"""Request bodies: the size limit whatever the framing, and UTF-8 only.

The chunked cases run against gunicorn: the Flask test client frames bodies differently (it
gives no ``wsgi.input_terminated``), so it cannot show what a server does with them.
"""

from __future__ import annotations

import json

import pytest

from tests.support.api import ADMIN, SECRET
from tests.support.live import GunicornServer

LIMIT = 65536  # OPS_MAX_REQUEST_BYTES's default
TOO_LARGE = f"the body is larger than {LIMIT} bytes (OPS_MAX_REQUEST_BYTES)"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server():
    with GunicornServer({"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_STREAM_SECRET": SECRET,
                         "DEV_LOCAL_LLM": "1", "OPS_DEV_TICK_SECONDS": "0.01"}) as server:
        yield server


def titled(server, title: str) -> list[dict]:
    tasks = server.admin.get("/ops/tasks?limit=200").json()["tasks"]
    return [t for t in tasks if t["title"] == title]


def padded(title: str, size: int, tail: bytes = b"") -> bytes:
    """A task's JSON, then spaces (and ``tail``) up to ``size`` bytes."""
    head = json.dumps({"title": title}).encode()
    return head + b" " * (size - len(head) - len(tail)) + tail


def in_chunks(body: bytes, size: int = 8192):
    """A generator body: requests sends it with ``Transfer-Encoding: chunked``."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


@pytest.mark.live
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_body_over_the_limit_is_413_and_creates_nothing(server, chunked):
    """The reported request: valid JSON, 70,000 spaces and GARBAGE was cut at 64 KiB, the
    prefix parsed and a task created (201)."""
    title = f"cut {'chunked' if chunked else 'length'}"
    body = padded(title, len(json.dumps({"title": title})) + 70_000 + 7, b"GARBAGE")
    response = server.admin.post("/ops/tasks", data=in_chunks(body) if chunked else body,
                                 headers=JSON)
    sent = response.request.headers
    assert ("Transfer-Encoding" in sent) is chunked and ("Content-Length" in sent) is not chunked
    assert response.status_code == 413, response.text
    assert response.json() == {"error": TOO_LARGE}
    assert titled(server, title) == []


@pytest.mark.live
@pytest.mark.parametrize("size, status", [(1000, 201), (LIMIT, 201), (LIMIT + 1, 413)])
def test_a_chunked_body_up_to_the_limit_is_read_whole(server, size, status):
    title = f"chunked {size}"
    response = server.admin.post("/ops/tasks", data=in_chunks(padded(title, size)),
                                 headers=JSON)
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == status, response.text
    assert len(titled(server, title)) == (1 if status == 201 else 0)


@pytest.mark.parametrize("body", [
    '{"title": "utf-16"}'.encode("utf-16-le"),
    '{"title": "utf-16"}'.encode("utf-16-be"),
    '{"title": "utf-16"}'.encode("utf-16"),  # with its byte order mark
    '{"title": "utf-32"}'.encode("utf-32"),
    b"\xef\xbb\xbf" + b'{"title": "bom"}',  # UTF-8 with a byte order mark
], ids=["utf-16-le", "utf-16-be", "utf-16-bom", "utf-32", "utf-8-bom"])
def test_a_body_that_is_not_plain_utf8_is_400_and_creates_nothing(admin, body):
    response = admin.post("/ops/tasks", data=body, headers=JSON)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"].startswith("malformed JSON")
    assert admin.get("/ops/tasks").get_json()["tasks"] == []


def test_the_413_names_the_limit(admin):
    response = admin.post("/ops/tasks", json={"title": "x", "body": "y" * 70_000})
    assert response.status_code == 413 and response.get_json() == {"error": TOO_LARGE}
    assert admin.get("/ops/tasks").get_json()["tasks"] == []
