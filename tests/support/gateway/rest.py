"""The PostgREST subset the Supabase store sends, translated to SQL over real PostgreSQL.

Strict on purpose: a query shape not listed here answers 501, so that a new kind of request
from the store cannot pass the tests unnoticed. Implemented:

- ``GET /rest/v1/T?select=a,b`` (or ``*``) with filters ``col=eq|neq|gt|gte|lt|lte.v``,
  ``col=in.(v1,v2)`` and ``col=is.null|true|false`` (``col`` may be ``json_col->>key``: the
  key's text),
  ``order=col.asc|desc[,...]`` and ``limit=N``;
- ``POST /rest/v1/T`` (an object, or an array with ``?columns=``), ``PATCH /rest/v1/T`` and
  ``DELETE /rest/v1/T`` with filters, each with ``Prefer: return=representation`` or
  ``return=minimal``;
- ``POST`` with ``?on_conflict=col`` and ``Prefer: resolution=ignore-duplicates``
  (``INSERT ... ON CONFLICT (col) DO NOTHING``: the rows that conflict are skipped, and
  ``return=representation`` answers only the rows inserted);
- ``Prefer: count=exact`` on a ``GET``: the rows, and ``Content-Range: 0-N/total`` (``*/total``
  when no row is answered), 206 when the rows are fewer than the total;
- ``Accept: application/vnd.pgrst.object+json`` (exactly one row, else PGRST116);
- the ``apikey`` and ``Authorization: Bearer`` headers checked against the service key;
- PostgREST's error JSON (``code``, ``message``, ``details``, ``hint``) and status codes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from psycopg import sql

SINGLE = "application/vnd.pgrst.object+json"
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
OPERATORS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
IGNORE_DUPLICATES = "resolution=ignore-duplicates"
COUNT_EXACT = "count=exact"
KNOWN_PREFER = {"return=representation", "return=minimal", IGNORE_DUPLICATES, COUNT_EXACT}
JSON_TEXT = "->>"
IS_OPERANDS = {"null": "NULL", "true": "TRUE", "false": "FALSE"}


class PgrstError(Exception):
    """An error answer in PostgREST's shape."""

    def __init__(self, status: int, code: str, message: str, details: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "details": details, "hint": hint, "message": message}


def not_implemented(what: str) -> PgrstError:
    return PgrstError(501, "GW501", f"the test gateway does not implement {what}",
                      hint="extend tests/support/gateway/rest.py if the store now needs it")


def identifier(name: str, what: str) -> str:
    if not IDENTIFIER.match(name):
        raise not_implemented(f"{what} {name!r}")
    return name


class Query:
    """One parsed request: table, columns, filters, order, limit, body and preferences."""

    def __init__(self, method: str, table: str, args: list[tuple[str, str]],
                 headers, body: bytes):
        self.method = method
        self.table = identifier(table, "the path /rest/v1/")
        self.select: list[str] | None = None
        self.columns: list[str] | None = None
        # (column, JSON key or None, operator, operand)
        self.filters: list[tuple[str, str | None, str, Any]] = []
        self.order: list[tuple[str, str]] = []
        self.limit: int | None = None
        self.on_conflict: list[str] | None = None
        self._parse_args(args)
        self.single = self._accept(headers.get("Accept"))
        self.representation, self.ignore_duplicates = self._prefer(headers.get("Prefer"))
        self.count_exact = COUNT_EXACT in (headers.get("Prefer") or "")
        if self.count_exact and method != "GET":
            raise not_implemented(f"Prefer: count=exact on a {method}")
        if self.on_conflict is not None and method != "POST":
            raise not_implemented(f"on_conflict on a {method}")
        if self.ignore_duplicates and (method != "POST" or self.on_conflict is None):
            # PostgREST would fall back on the primary key; nothing here sends that.
            raise not_implemented("Prefer: resolution=ignore-duplicates without a POST's "
                                  "?on_conflict=")
        self.body = body

    def _parse_args(self, args) -> None:
        seen = set()
        for key, value in args:
            if key in seen and key in {"select", "order", "limit", "columns", "on_conflict"}:
                raise not_implemented(f"a repeated {key} parameter")
            seen.add(key)
            if key == "select":
                self.select = self._column_list(value, allow_star=True)
            elif key == "columns":
                self.columns = self._column_list(value, allow_star=False)
            elif key == "on_conflict":
                self.on_conflict = self._column_list(value, allow_star=False)
            elif key == "order":
                self.order = [self._order_term(term) for term in value.split(",")]
            elif key == "limit":
                if not value.isdigit():
                    raise PgrstError(400, "PGRST102", f"invalid limit {value!r}")
                self.limit = int(value)
            else:
                column, arrow, json_key = key.partition(JSON_TEXT)
                self.filters.append(self._filter(
                    identifier(column, "the parameter"),
                    identifier(json_key, "the JSON key") if arrow else None, value))

    @staticmethod
    def _column_list(value: str, allow_star: bool) -> list[str]:
        if allow_star and value == "*":
            return ["*"]
        # The client quotes the names in ?columns= ("a","b"); PostgREST accepts both.
        return [identifier(c.strip('"'), "the column") for c in value.split(",")]

    @staticmethod
    def _order_term(term: str) -> tuple[str, str]:
        column, _, direction = term.partition(".")
        if direction not in ("", "asc", "desc"):
            raise not_implemented(f"order modifier {direction!r}")
        return identifier(column, "the order column"), direction or "asc"

    @staticmethod
    def _filter(column: str, json_key: str | None, value: str
                ) -> tuple[str, str | None, str, Any]:
        op, dot, operand = value.partition(".")
        if not dot:
            raise PgrstError(400, "PGRST100", f'"failed to parse filter ({value})"')
        if op in OPERATORS:
            return column, json_key, OPERATORS[op], operand
        if op == "in":
            if not (operand.startswith("(") and operand.endswith(")")):
                raise PgrstError(400, "PGRST100", f'"failed to parse filter (in.{operand})"')
            return column, json_key, "IN", _split_list(operand[1:-1])
        if op == "is":
            if operand not in IS_OPERANDS:
                raise PgrstError(400, "PGRST100", f'"failed to parse filter (is.{operand})"')
            return column, json_key, "IS", operand
        raise not_implemented(f"the filter operator {op!r}")

    @staticmethod
    def _accept(accept: str | None) -> bool:
        if accept in (None, "", "*/*", "application/json"):
            return False
        if accept == SINGLE:
            return True
        raise not_implemented(f"Accept: {accept}")

    @staticmethod
    def _prefer(prefer: str | None) -> tuple[bool, bool]:
        """Whether to answer the rows, and whether to skip the rows that conflict."""
        tokens = [t.strip() for t in (prefer or "").split(",") if t.strip()]
        unknown = [t for t in tokens if t not in KNOWN_PREFER]
        if unknown:
            raise not_implemented(f"Prefer: {', '.join(unknown)}")
        return "return=representation" in tokens, IGNORE_DUPLICATES in tokens

    def json_body(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise PgrstError(400, "PGRST102", "Empty or invalid json") from None


def _split_list(inner: str) -> list[str]:
    """``a,"b,c",d`` -> ``["a", "b,c", "d"]`` (PostgREST's quoting of in.() values)."""
    values, current, quoted, i = [], [], False, 0
    while i < len(inner):
        ch = inner[i]
        if ch == '"':
            quoted = not quoted
        elif ch == "\\" and quoted and i + 1 < len(inner):
            i += 1
            current.append(inner[i])
        elif ch == "," and not quoted:
            values.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    values.append("".join(current))
    return values


def build(query: Query) -> tuple[sql.Composable, list[Any]]:
    """The SQL statement (answering one JSON text, an array of rows) and its parameters."""
    if query.method == "GET":
        return _select(query)
    if query.method == "POST":
        return _insert(query)
    if query.method == "PATCH":
        return _update(query)
    if query.method == "DELETE":
        return _delete(query)
    raise not_implemented(f"the method {query.method}")


def _table(query: Query) -> sql.Composable:
    return sql.Identifier("public", query.table)


def _returning(query: Query) -> sql.Composable:
    if query.select in (None, ["*"]):
        return sql.SQL("*")
    return sql.SQL(", ").join(sql.Identifier(c) for c in query.select)


def _where(query: Query, params: list[Any]) -> sql.Composable:
    if not query.filters:
        return sql.SQL("")
    terms = []
    for column, json_key, op, operand in query.filters:
        target = sql.Identifier(query.table, column)
        if json_key is not None:  # PostgREST: "col->>key" filters on the key's text
            target = sql.SQL("({} ->> {})").format(target, sql.Literal(json_key))
        if op == "IN":
            if not operand:
                terms.append(sql.SQL("false"))
                continue
            placeholders = sql.SQL(", ").join(sql.Placeholder() * len(operand))
            terms.append(sql.SQL("{} IN ({})").format(target, placeholders))
            params.extend(operand)
        elif op == "IS":
            terms.append(sql.SQL("{} IS {}").format(target, sql.SQL(IS_OPERANDS[operand])))
        else:
            terms.append(sql.SQL("{} {} {}").format(target, sql.SQL(op), sql.Placeholder()))
            params.append(operand)
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(terms)


def _aggregate(inner: sql.Composable) -> sql.Composable:
    return sql.SQL("SELECT coalesce(json_agg(_r), '[]'::json)::text FROM ({}) _r").format(inner)


def _select(query: Query):
    if query.columns is not None or query.body:
        raise not_implemented("a GET with columns or a body")
    params: list[Any] = []
    if query.select in (None, ["*"]):
        columns = sql.SQL("{}.*").format(sql.Identifier(query.table))
    else:
        columns = sql.SQL(", ").join(sql.Identifier(query.table, c) for c in query.select)
    statement = sql.SQL("SELECT {} FROM {}").format(columns, _table(query))
    statement += _where(query, params)
    if query.order:
        statement += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(query.table, c), sql.SQL(d.upper()))
            for c, d in query.order)
    if query.limit is not None:
        statement += sql.SQL(" LIMIT {}").format(sql.Literal(query.limit))
    if query.count_exact:  # {"rows": [...], "count": N}: the server answers Content-Range
        counted = sql.SQL("SELECT count(*) FROM {}").format(_table(query))
        counted += _where(query, params)
        return sql.SQL("SELECT json_build_object('rows', ({}), 'count', ({}))::text").format(
            sql.SQL("SELECT coalesce(json_agg(_r), '[]'::json) FROM ({}) _r").format(statement),
            counted), params
    return _aggregate(statement), params


def _insert(query: Query):
    if query.filters or query.order or query.limit is not None:
        raise not_implemented("filters, order or limit on an insert")
    payload = query.json_body()
    rows = payload if isinstance(payload, list) else [payload]
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise PgrstError(400, "PGRST102", "Empty or invalid json")
    if isinstance(payload, list) and query.columns is None:
        raise not_implemented("a list insert without ?columns=")
    columns = query.columns or [identifier(k, "the column") for k in rows[0]]
    if query.columns is None and any(set(r) != set(columns) for r in rows):
        raise PgrstError(400, "PGRST102", "All object keys must match")
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    conflict = sql.SQL("")
    if query.ignore_duplicates:
        conflict = sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in query.on_conflict))
    statement = sql.SQL(
        "WITH _ins AS (INSERT INTO {table} ({names}) SELECT {names} FROM "
        "json_populate_recordset(NULL::{table}, %s::json){conflict} RETURNING {returning}) "
        "SELECT coalesce(json_agg(_ins), '[]'::json)::text FROM _ins"
    ).format(table=_table(query), names=names, conflict=conflict, returning=_returning(query))
    return statement, [json.dumps(rows)]


def _update(query: Query):
    if query.order or query.limit is not None or query.columns is not None:
        raise not_implemented("order, limit or columns on an update")
    if not query.filters:
        raise PgrstError(400, "21000", "UPDATE requires a WHERE clause")
    payload = query.json_body()
    if not isinstance(payload, dict) or not payload:
        raise PgrstError(400, "PGRST102", "Empty or invalid json")
    names = sql.SQL(", ").join(sql.Identifier(identifier(k, "the column")) for k in payload)
    params: list[Any] = [json.dumps(payload)]
    where = _where(query, params)
    statement = sql.SQL(
        "WITH _upd AS (UPDATE {table} SET ({names}) = (SELECT {names} FROM "
        "json_populate_record(NULL::{table}, %s::json)){where} RETURNING {returning}) "
        "SELECT coalesce(json_agg(_upd), '[]'::json)::text FROM _upd"
    ).format(table=_table(query), names=names, where=where, returning=_returning(query))
    return statement, params


def _delete(query: Query):
    if query.order or query.limit is not None or query.columns is not None:
        raise not_implemented("order, limit or columns on a delete")
    if query.body not in (b"", b"{}"):  # the client sends an empty object
        raise not_implemented("a body on a delete")
    if not query.filters:
        raise PgrstError(400, "21000", "DELETE requires a WHERE clause")
    params: list[Any] = []
    statement = sql.SQL(
        "WITH _del AS (DELETE FROM {table}{where} RETURNING {returning}) "
        "SELECT coalesce(json_agg(_del), '[]'::json)::text FROM _del"
    ).format(table=_table(query), where=_where(query, params), returning=_returning(query))
    return statement, params


def database_error(error, table: str) -> PgrstError:
    """PostgREST's answer to a PostgreSQL error (its SQLSTATE decides the HTTP status)."""
    diag = error.diag
    state = diag.sqlstate or "XX000"
    if state == "42P01":
        return PgrstError(404, "PGRST205",
                          f"Could not find the table 'public.{table}' in the schema cache")
    status = {"23503": 409, "23505": 409, "42501": 401}.get(state)
    if status is None:
        status = 503 if state[:2] in ("08", "53", "57") else 500 if state[:2] == "XX" else 400
    return PgrstError(status, state, diag.message_primary or str(error), diag.message_detail,
                      diag.message_hint)
