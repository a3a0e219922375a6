"""``flask ops``: the operator's command line (:mod:`.commands`; who is who: :mod:`.team`) and
its configuration check (:mod:`.check`)."""

from . import team  # noqa: F401 (registers its commands on the group)
from .commands import cli

__all__ = ["cli"]
