"""``flask ops``: the operator's command line (:mod:`.commands`) and its configuration check
(:mod:`.check`)."""

from .commands import cli

__all__ = ["cli"]
