"""Keeping recipes away from the service's secrets: non-dumpable processes and the recipe user.

A recipe's command is untrusted. Its own environment is clean, but the secrets live on in the
environment and memory of gunicorn's master and workers, which ``/proc/<pid>/environ``,
``mem`` and ptrace expose to any process of the same user, and to root. So:

- the master and every worker are made non-dumpable (``PR_SET_DUMPABLE`` 0): their ``/proc``
  files then belong to root and ptrace is refused, which stops a recipe of the same user;
- a service that runs as root runs its recipes as ``OPS_RECIPE_USER`` instead, since nothing
  stops root (:class:`RecipeUser`);
- a recipe's first process gets SIGKILL when the worker that started it dies
  (``PR_SET_PDEATHSIG``); the rest of its group is the master's to kill (:mod:`.group_records`).

Only the standard library: gunicorn's master imports this before any worker forks.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import pwd
import signal

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.prctl.restype = ctypes.c_int


def _prctl(option: int, value: int = 0) -> int:
    result = _libc.prctl(option, value, 0, 0, 0)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def make_undumpable() -> None:
    """Hide this process's environment and memory from other processes of its user.

    Inherited by fork; an ``exec`` resets it (the new program holds none of our secrets)."""
    _prctl(PR_SET_DUMPABLE, 0)


def is_dumpable() -> bool:
    return _prctl(PR_GET_DUMPABLE) == 1


def running_as_root() -> bool:
    return os.geteuid() == 0


def die_with_parent(parent: int) -> None:
    """In a child between fork and exec: SIGKILL when the thread that forked it dies.

    It runs after the child took the recipe user's identity, which would have cleared it.
    Nothing here takes a lock, as code between fork and exec must not. The parent may have
    died before the call: then it is too late to be told, so the child ends itself."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclasses.dataclass(frozen=True)
class RecipeUser:
    """The unprivileged account recipes run as (``OPS_RECIPE_USER``)."""

    name: str
    uid: int
    gid: int  # the account's primary group; recipes get no other group
    home: str

    @classmethod
    def lookup(cls, name_or_uid: str) -> RecipeUser:
        """The account of that name, or of that numeric uid; KeyError when there is none."""
        text = name_or_uid.strip()
        entry = pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    def popen_args(self) -> dict:
        """What ``subprocess.Popen`` needs to start a command as this user.

        ``extra_groups`` names the primary group rather than being empty: gevent's Popen
        skips ``setgroups`` for an empty list, and the child would keep root's groups."""
        return {"user": self.uid, "group": self.gid, "extra_groups": [self.gid]}
