"""Running the service as another user: a throwaway account, an interpreter it can run, and
a copy of the code it can read."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import site
import subprocess
import sys
import tempfile
from pathlib import Path

from .processes import ROOT

# What gunicorn and the recipes of tests/support/recipes.toml need.
SERVED = ("app", "wsgi.py", "gunicorn.conf.py", "tests/support/recipes.toml",
          "tests/support/recipe_child.py")


def require_root() -> None:
    import pytest

    if os.geteuid() != 0:
        message = "switching users needs root (CI runs the tests as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


class ThrowawayUser:
    """``with ThrowawayUser() as user:`` a new system account (a ``pwd`` entry) with its own
    group, removed afterwards with every process it still runs."""

    def __enter__(self) -> pwd.struct_passwd:
        self.name = f"ops-test-{secrets.token_hex(4)}"
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", self.name],
                       check=True, capture_output=True)
        self.entry = pwd.getpwnam(self.name)
        return self.entry

    def __exit__(self, *exc) -> None:
        for pid in processes_of(self.entry.pw_uid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["userdel", self.name], capture_output=True)
        subprocess.run(["groupdel", self.name], capture_output=True)  # if userdel kept it


def processes_of(uid: int) -> list[int]:
    """The pids of the processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{entry}/status").read_text() if entry.isdigit() else ""
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:") and int(line.split()[1]) == uid:
                found.append(int(entry))
    return found


def interpreter_for(user: pwd.struct_passwd) -> tuple[str, dict[str, str]]:
    """A Python the user can run with gunicorn, gevent and Flask importable, and the
    environment it needs: this one, else the system's Python of the same version with this
    one's packages (a pyenv or virtualenv under /root is out of other users' reach), else the
    same with a copy of those packages the user can read."""
    import pytest

    this = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(this, path="/usr/bin")
    candidates = [(sys.executable, {}), (system, {"PYTHONPATH": os.pathsep.join(
        site.getsitepackages())})]
    for python, env in candidates + [(system, lambda: {"PYTHONPATH": _readable_packages()})]:
        env = env() if callable(env) else env
        if python and _can_serve(python, env, user):
            return python, env
    message = f"no Python that {user.pw_name} can run has this project's packages"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _can_serve(python: str, env: dict[str, str], user: pwd.struct_passwd) -> bool:
    try:
        return subprocess.run(
            [python, "-c", "import gunicorn, gevent, flask, requests"], env=env,
            user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
            capture_output=True).returncode == 0
    except PermissionError:
        return False


_packages_copy: tempfile.TemporaryDirectory | None = None
# Test tools the served code never imports: left out of the copy (most of its size).
_NOT_SERVED = ("playwright*", "pip", "pip-*", "schemathesis*", "jsonschema_rs*", "hypothesis*",
               "ruff*", "psycopg*", "pygments", "__editable__*")


def _readable_packages() -> str:
    """This interpreter's packages copied where every user can read them (once a session)."""
    global _packages_copy
    if _packages_copy is None:
        _packages_copy = tempfile.TemporaryDirectory(prefix="ops-packages-")
        target = Path(_packages_copy.name) / "site-packages"
        shutil.copytree(site.getsitepackages()[0], target,
                        ignore=shutil.ignore_patterns(*_NOT_SERVED), symlinks=True)
        for path in [Path(_packages_copy.name), *Path(_packages_copy.name).rglob("*")]:
            path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    return str(Path(_packages_copy.name) / "site-packages")


def readable_copy() -> tempfile.TemporaryDirectory:
    """The served code, copied to a directory every user can read (the checkout may not be)."""
    directory = tempfile.TemporaryDirectory(prefix="ops-served-")
    os.chmod(directory.name, 0o755)
    for name in SERVED:
        source, target = ROOT / name, Path(directory.name) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    for path in Path(directory.name).rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory
