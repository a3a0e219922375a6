"""The recipe file (``OPS_RECIPES``): the commands admins may run, and binding a request to one.

A recipe is an argv list (never a shell string) with an optional working directory,
environment additions, a timeout and named parameters. A parameter is a placeholder that is a
whole argv element (``"{ref}"``) and a pattern its value must match in full; nothing else of
a request reaches the command. The format is documented in ``docs/runners.md``.

This module imports nothing of the service, so that the settings can check the file at start-up
(before gunicorn forks and gevent patches).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .roles import Role

NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_PARAM_LENGTH = 256
MAX_TIMEOUT = 7 * 86_400
# The service's own secrets: a recipe may not hand them to its command.
SECRET_NAMES = frozenset({"SETTINGS_ADMIN_TOKEN", "OPS_STREAM_SECRET",
                          "SUPABASE_SERVICE_ROLE_KEY", "OPS_LLM_API_KEY", "OPS_NOTIFY_SECRET"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

RECIPE_KEYS = {"role", "description", "argv", "cwd", "env", "timeout", "kill_grace", "params",
               "concurrency", "concurrency_policy", "notify", "pool"}
PARAM_KEYS = {"pattern", "description", "example"}
# What a new task of a busy concurrency group does: wait its turn, be refused, or cancel the
# task that holds the group (docs/runners.md).
POLICIES = ("queue", "reject", "cancel-running")
MAX_GROUP_LENGTH = 200
NOTIFY_KEYS = {"url", "format"}
NOTIFY_FORMATS = ("json", "slack")


class RecipeFileError(Exception):
    """The recipe file cannot be used; the message names the file's problem."""


class RecipeError(ValueError):
    """A request names an unknown recipe or gives it wrong parameters."""


@dataclasses.dataclass(frozen=True)
class NotifyTarget:
    """Where a task's notifications go: a URL, and the body's format (``json``: the summary
    of docs/notifications.md; ``slack``: a Slack incoming-webhook message)."""

    url: str
    format: str = "json"


def check_notify_url(url: Any) -> str:
    """The URL if it is an http(s) URL with a host; else ValueError saying so."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("a notification URL must be a non-empty string")
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError:
        raise ValueError(f"{url[:80]!r} is not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname or _CONTROL.search(url) \
            or " " in url:
        raise ValueError(f"{url[:80]!r} is not an http(s) URL such as "
                         "https://hooks.example.com/ops")
    return url


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    pattern: str
    description: str = ""
    example: str = ""  # a value that fits, for forms to show

    def check(self, value: Any) -> str:
        """The value, if it is a string that fits; else RecipeError naming the problem."""
        if not isinstance(value, str):
            raise RecipeError(f"parameter {self.name} must be a string")
        if not value or len(value) > MAX_PARAM_LENGTH:
            raise RecipeError(f"parameter {self.name} must have 1 to {MAX_PARAM_LENGTH} "
                              "characters")
        if _CONTROL.search(value):
            raise RecipeError(f"parameter {self.name} must not contain control characters")
        if re.fullmatch(self.pattern, value) is None:
            raise RecipeError(f"parameter {self.name} does not match its pattern "
                              f"{self.pattern!r}: got {value[:80]!r}")
        return value

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "pattern": self.pattern, "description": self.description,
                "example": self.example}


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    argv: tuple[str, ...]
    params: tuple[Param, ...] = ()
    description: str = ""
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    timeout: float | None = None
    kill_grace: float | None = None
    role: Role | None = None  # the role needed to run it (None: any operator)
    concurrency: str | None = None  # the group's name, "{param}" placeholders inside
    concurrency_policy: str = "queue"  # one of POLICIES
    notify: tuple[NotifyTarget, ...] = ()  # told when its tasks end (docs/notifications.md)
    pool: str = "default"  # only processes serving this pool (OPS_POOLS) run its tasks

    def bind(self, params: Any) -> dict[str, str]:
        """Check a request's parameters: all declared ones, nothing else, each matching."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise RecipeError("params must be a JSON object of strings")
        declared = {p.name: p for p in self.params}
        extra = sorted(set(params) - set(declared))
        if extra:
            allowed = ", ".join(declared) or "none"
            raise RecipeError(f"recipe {self.name} has no parameter(s) "
                              f"{', '.join(extra)[:200]}; its parameters: {allowed}")
        missing = [name for name in declared if name not in params]
        if missing:
            raise RecipeError(f"recipe {self.name} needs parameter(s) {', '.join(missing)}")
        return {name: declared[name].check(params[name]) for name in declared}

    def command(self, params: Mapping[str, str]) -> list[str]:
        """The argv with each placeholder element replaced by its (checked) parameter."""
        bound = self.bind(dict(params))
        return [_substitute(arg, bound) for arg in self.argv]

    def group(self, params: Mapping[str, str]) -> str | None:
        """The concurrency group of a task with these (checked) parameters; None: none."""
        if self.concurrency is None:
            return None
        return PLACEHOLDER.sub(lambda m: params[m.group(1)], self.concurrency)

    def to_dict(self) -> dict[str, Any]:
        """What ``GET /ops/recipes`` shows: environment values stay private."""
        return {"name": self.name, "description": self.description, "argv": list(self.argv),
                "cwd": self.cwd, "env": sorted(name for name, _ in self.env),
                "timeout": self.timeout, "params": [p.to_dict() for p in self.params],
                "role": self.role.label if self.role else None,
                "concurrency": self.concurrency,
                "concurrency_policy": self.concurrency_policy if self.concurrency else None,
                "pool": self.pool}


def _substitute(arg: str, params: Mapping[str, str]) -> str:
    match = PLACEHOLDER.fullmatch(arg)
    return params[match.group(1)] if match else arg


@dataclasses.dataclass(frozen=True)
class RecipeBook:
    """The recipes of one file, by name."""

    recipes: tuple[Recipe, ...] = ()
    path: str | None = None

    def __len__(self) -> int:
        return len(self.recipes)

    def get(self, name: Any) -> Recipe:
        """The recipe called ``name``, or RecipeError listing the known ones."""
        if not isinstance(name, str):
            raise RecipeError("recipe must be a string (a recipe name)")
        for recipe in self.recipes:
            if recipe.name == name:
                return recipe
        known = ", ".join(r.name for r in self.recipes) or "none are configured"
        raise RecipeError(f"unknown recipe {name[:80]!r}; known recipes: {known}")


def load_recipes(path: str | os.PathLike) -> RecipeBook:
    """Read and check a recipe file; raise RecipeFileError saying what is wrong."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise RecipeFileError(f"cannot read {path}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RecipeFileError(f"{path} is not valid TOML: {error}") from None
    return parse_recipes(document, base=path.resolve().parent, source=str(path))


def parse_recipes(document: Mapping[str, Any], *, base: Path, source: str = "recipes"
                  ) -> RecipeBook:
    """Build a RecipeBook from a parsed TOML document; relative ``cwd`` is under ``base``."""
    unknown = sorted(set(document) - {"recipes"})
    if unknown:
        raise RecipeFileError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; "
                              "recipes go in [recipes.<name>] tables")
    table = document.get("recipes", {})
    if not isinstance(table, dict):
        raise RecipeFileError(f"{source}: recipes must be a table of [recipes.<name>]")
    recipes = []
    for name, spec in table.items():
        try:
            recipes.append(_recipe(name, spec, base))
        except RecipeFileError as error:
            raise RecipeFileError(f"{source}: recipe {name!r}: {error}") from None
    return RecipeBook(tuple(recipes), source)


def _recipe(name: str, spec: Any, base: Path) -> Recipe:
    if NAME.fullmatch(name) is None:
        raise RecipeFileError("names are 1-64 lowercase letters, digits, '_', '.', '-'")
    if not isinstance(spec, dict):
        raise RecipeFileError("must be a table")
    unknown = sorted(set(spec) - RECIPE_KEYS)
    if unknown:
        raise RecipeFileError(f"unknown key(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(RECIPE_KEYS))}")
    argv = spec.get("argv")
    if (not isinstance(argv, list) or not argv
            or not all(isinstance(a, str) and a and "\0" not in a for a in argv)):
        raise RecipeFileError("argv must be a non-empty list of non-empty strings "
                              "(the program and its arguments; no shell is involved)")
    if PLACEHOLDER.fullmatch(argv[0]):
        raise RecipeFileError("argv[0] (the program) cannot be a parameter")
    params = tuple(_param(pname, pspec) for pname, pspec in _table(spec, "params").items())
    declared = {p.name for p in params}
    used = {m.group(1) for a in argv if (m := PLACEHOLDER.fullmatch(a))}
    if undeclared := ", ".join(sorted(used - declared)):
        raise RecipeFileError(f"argv uses undeclared parameter(s) {undeclared}; "
                              "declare each in [recipes.<name>.params.<param>]")
    concurrency, policy = _concurrency(spec, declared)
    if concurrency is not None:
        used |= {m.group(1) for m in PLACEHOLDER.finditer(concurrency)}
    if unused := ", ".join(sorted(declared - used)):
        raise RecipeFileError(f"parameter(s) {unused} are declared but not used: a parameter "
                              "is a whole argv element such as \"{ref}\"")
    return Recipe(name=name, argv=tuple(argv), params=params,
                  description=_text(spec, "description"), cwd=_cwd(spec.get("cwd"), base),
                  env=_env(_table(spec, "env")), timeout=_seconds(spec, "timeout"),
                  kill_grace=_seconds(spec, "kill_grace"), role=_role(spec),
                  concurrency=concurrency, concurrency_policy=policy,
                  notify=_notify(spec.get("notify", [])), pool=_pool(spec))


def _pool(spec: dict) -> str:
    pool = spec.get("pool", "default")
    if not isinstance(pool, str) or NAME.fullmatch(pool) is None:
        raise RecipeFileError("pool must be a name of 1-64 lowercase letters, digits, '_', "
                              "'.', '-' (processes serve the pools in OPS_POOLS)")
    return pool


def _concurrency(spec: dict, declared: set[str]) -> tuple[str | None, str]:
    """The group's name template and the policy; placeholders must name declared params."""
    template = spec.get("concurrency")
    policy = spec.get("concurrency_policy", "queue")
    if policy not in POLICIES:
        raise RecipeFileError(f"concurrency_policy must be one of {', '.join(POLICIES)}, "
                              f"got {str(policy)[:40]!r}")
    if template is None:
        if "concurrency_policy" in spec:
            raise RecipeFileError("concurrency_policy needs a concurrency group "
                                  "(concurrency = \"deploy-{service}\")")
        return None, policy
    if (not isinstance(template, str) or not template.strip()
            or len(template) > MAX_GROUP_LENGTH or _CONTROL.search(template)):
        raise RecipeFileError(f"concurrency must be a group name of 1 to {MAX_GROUP_LENGTH} "
                              "characters, such as \"deploy-{service}\"")
    names = [m.group(1) for m in PLACEHOLDER.finditer(template)]
    if unknown := ", ".join(sorted(set(names) - declared)):
        raise RecipeFileError(f"concurrency uses undeclared parameter(s) {unknown}; "
                              "its placeholders name the recipe's parameters")
    if "{" in PLACEHOLDER.sub("", template) or "}" in PLACEHOLDER.sub("", template):
        raise RecipeFileError("concurrency: a placeholder is a parameter's name in braces, "
                              "such as {service}")
    return template, policy


def _notify(entries: Any) -> tuple[NotifyTarget, ...]:
    """``notify = ["https://...", {url = "https://...", format = "slack"}]``."""
    if not isinstance(entries, list):
        raise RecipeFileError("notify must be a list of URLs or {url, format} tables")
    targets = []
    for entry in entries:
        fmt = "json"
        if isinstance(entry, dict):
            unknown = sorted(set(entry) - NOTIFY_KEYS)
            if unknown:
                raise RecipeFileError(f"notify: unknown key(s) {', '.join(unknown)}; "
                                      "allowed: format, url")
            fmt = entry.get("format", "json")
            if fmt not in NOTIFY_FORMATS:
                raise RecipeFileError(f"notify: format must be one of "
                                      f"{', '.join(NOTIFY_FORMATS)}, got {str(fmt)[:40]!r}")
            entry = entry.get("url")
        try:
            targets.append(NotifyTarget(check_notify_url(entry), fmt))
        except ValueError as error:
            raise RecipeFileError(f"notify: {error}") from None
    return tuple(targets)


def _role(spec: dict) -> Role | None:
    if "role" not in spec:
        return None
    try:
        return Role.parse(spec["role"])
    except ValueError as error:
        raise RecipeFileError(f"role: {error}") from None


def _param(name: str, spec: Any) -> Param:
    if PARAM_NAME.fullmatch(name) is None:
        raise RecipeFileError(f"parameter {name!r}: names are letters, digits and '_'")
    if not isinstance(spec, dict) or not isinstance(spec.get("pattern"), str):
        raise RecipeFileError(f"parameter {name}: needs a pattern (a regular expression "
                              "the whole value must match)")
    unknown = sorted(set(spec) - PARAM_KEYS)
    if unknown:
        raise RecipeFileError(f"parameter {name}: unknown key(s) {', '.join(unknown)}")
    try:
        re.compile(spec["pattern"])
    except re.error as error:
        raise RecipeFileError(f"parameter {name}: pattern is not a valid regular expression: "
                              f"{error}") from None
    example = _text(spec, "example")
    if example and re.fullmatch(spec["pattern"], example) is None:
        raise RecipeFileError(f"parameter {name}: example {example[:80]!r} does not match "
                              "its pattern")
    return Param(name, spec["pattern"], _text(spec, "description"), example)


def _table(spec: dict, key: str) -> dict:
    value = spec.get(key, {})
    if not isinstance(value, dict):
        raise RecipeFileError(f"{key} must be a table")
    return value


def _text(spec: dict, key: str) -> str:
    value = spec.get(key, "")
    if not isinstance(value, str):
        raise RecipeFileError(f"{key} must be a string")
    return value


def _cwd(value: Any, base: Path) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RecipeFileError("cwd must be a directory path")
    path = (base / value).resolve()
    if not path.is_dir():
        raise RecipeFileError(f"cwd {path} is not a directory")
    return str(path)


def _env(table: dict) -> tuple[tuple[str, str], ...]:
    for name, value in table.items():
        if ENV_NAME.fullmatch(name) is None or not isinstance(value, str) or "\0" in value:
            raise RecipeFileError(f"env {name!r}: names are letters, digits and '_', "
                                  "values are strings")
        if name in SECRET_NAMES:
            raise RecipeFileError(f"env {name}: the service's secrets are never passed to "
                                  "a command")
    return tuple(sorted(table.items()))


def _seconds(spec: dict, key: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 < value <= MAX_TIMEOUT:
        raise RecipeFileError(f"{key} must be a number of seconds from 0 to {MAX_TIMEOUT}")
    return float(value)
