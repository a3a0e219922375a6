"""The Server-Sent Events stream of a task's events.

:mod:`.sse` writes it; :mod:`.reader` reads such a stream back into messages, for the
command line and the LLM runner.
"""

from .sse import (
    StreamsClosing,
    StreamTracker,
    TooManyStreams,
    TooManyTaskStreams,
    event_stream,
    format_event,
)

__all__ = ["StreamTracker", "StreamsClosing", "TooManyStreams", "TooManyTaskStreams",
           "event_stream", "format_event"]
