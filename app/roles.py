"""The three roles a credential can hold, each allowing what the one below it does and more.

- ``viewer``: list, show and stream tasks, mint stream tokens, read logs;
- ``operator``: a viewer who also creates (and relaunches) and cancels tasks;
- ``admin``: everything, including ``/metrics``, ``/ops/stats`` and the audit trail.

A recipe may require a role (``role = "admin"`` in the recipe file) to run it.
"""

from __future__ import annotations

import enum


class Role(enum.IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The role's name as files, headers and JSON write it: ``viewer``, ..."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: object) -> Role:
        """The role named ``text``; ValueError naming the choices otherwise."""
        if isinstance(text, str):
            try:
                return cls[text.strip().upper()]
            except KeyError:
                pass
        raise ValueError(f"a role is one of {', '.join(ROLE_NAMES)}, not {str(text)[:40]!r}")


ROLE_NAMES = tuple(role.label for role in Role)
