"""The gateway's WSGI app and HTTP server: auth, counting, a connection pool, JSON answers.

``GET /_gateway/stats`` answers the requests counted per ``"METHOD table"`` (tests read it to
measure how many requests the store sends); ``POST /_gateway/reset`` zeroes them.
``POST /_gateway/lose_answers?count=N`` makes the next N writes commit and then drop the
connection without an answer, as when a network fails at the worst moment.
"""

from __future__ import annotations

import collections
import hmac
import json
import logging
import socket
import threading
from urllib.parse import parse_qsl

import psycopg
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .rest import PgrstError, Query, build, database_error, not_implemented

PREFIX = "/rest/v1/"
PROFILE = "public"


class ConnectionPool:
    """A few autocommit connections reused across requests (threads come and go)."""

    def __init__(self, dsn: str, size: int = 16):
        self.dsn = dsn
        self._idle: list[psycopg.Connection] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()

    def run(self, statement, params) -> str:
        with self._slots:
            conn = self._take()
            try:
                with conn.cursor() as cur:
                    cur.execute(statement, params)
                    text = cur.fetchone()[0]
            except psycopg.OperationalError:
                conn.close()
                raise
            else:
                with self._lock:
                    self._idle.append(conn)
            return text

    def _take(self) -> psycopg.Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        conn.execute("SET TIME ZONE 'UTC'")
        return conn


class Gateway:
    """A WSGI app that answers the Supabase client like PostgREST behind Supabase's API."""

    def __init__(self, dsn: str, key: str):
        self.pool = ConnectionPool(dsn)
        self.key = key
        self.counts: collections.Counter[str] = collections.Counter()
        self.lose_answers = 0
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.handle(request)
        except PgrstError as error:
            response = self.json(error.body, error.status)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        if request.path == "/_gateway/stats" and request.method == "GET":
            with self._lock:
                return self.json(dict(self.counts), 200)
        if request.path == "/_gateway/reset" and request.method == "POST":
            with self._lock:
                self.counts.clear()
                self.lose_answers = 0
            return self.json({}, 200)
        if request.path == "/_gateway/lose_answers" and request.method == "POST":
            with self._lock:
                self.lose_answers = int(request.args["count"])
            return self.json({}, 200)
        if not request.path.startswith(PREFIX):
            raise not_implemented(f"the path {request.path}")
        table = request.path[len(PREFIX):]
        with self._lock:
            self.counts[f"{request.method} {table}"] += 1
        self.authenticate(request)
        for header in ("Accept-Profile", "Content-Profile"):
            if request.headers.get(header, PROFILE) != PROFILE:
                raise PgrstError(406, "PGRST106", "The schema must be one of the following: public")
        args = parse_qsl(request.query_string.decode(), keep_blank_values=True)
        query = Query(request.method, table, args, request.headers, request.get_data())
        statement, params = build(query)
        try:
            rows = json.loads(self.pool.run(statement, params))
        except psycopg.OperationalError as error:
            raise PgrstError(503, "PGRST001", "Database client error. Retrying the connection.",
                             str(error)) from None
        except psycopg.Error as error:
            raise database_error(error, query.table) from None
        if request.method != "GET" and self._take_lost_answer():
            request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
        if query.count_exact:
            return self.counted(query, rows["rows"], rows["count"])
        return self.answer(query, rows)

    def counted(self, query: Query, rows: list, total: int) -> Response:
        if query.single:
            raise not_implemented("Prefer: count=exact with a single object")
        response = self.json(rows, 206 if len(rows) < total else 200)
        response.headers["Content-Range"] = (f"0-{len(rows) - 1}/{total}" if rows
                                             else f"*/{total}")
        return response

    def _take_lost_answer(self) -> bool:
        with self._lock:
            if self.lose_answers <= 0:
                return False
            self.lose_answers -= 1
            self.counts["lost answers"] += 1
            return True

    def authenticate(self, request: Request) -> None:
        apikey = request.headers.get("apikey", "")
        bearer = request.headers.get("Authorization", "")
        if not (hmac.compare_digest(apikey.encode(), self.key.encode())
                and hmac.compare_digest(bearer.encode(), f"Bearer {self.key}".encode())):
            raise PgrstError(401, "GW401", "Invalid API key",
                             hint="Double check your Supabase `anon` or `service_role` API key.")

    def answer(self, query: Query, rows: list) -> Response:
        status = 201 if query.method == "POST" else 200
        if query.method != "GET" and not query.representation:
            return Response(status=201 if query.method == "POST" else 204)
        if query.single:
            if len(rows) != 1:
                raise PgrstError(406, "PGRST116",
                                 "JSON object requested, multiple (or no) rows returned",
                                 f"The result contains {len(rows)} rows")
            return self.json(rows[0], status)
        return self.json(rows, status)

    @staticmethod
    def json(body, status: int) -> Response:
        return Response(json.dumps(body), status=status, mimetype="application/json")


class _QuietHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

    def log_request(self, *args, **kwargs) -> None:
        pass


def serve(host: str, port: int, dsn: str, key: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    server = make_server(host, port, Gateway(dsn, key), threaded=True,
                         request_handler=_QuietHandler)
    server.serve_forever()
