"""The Server-Sent Events stream of a task's events."""

from .sse import (StreamsClosing, StreamTracker, TooManyStreams, event_stream,
                  format_event)

__all__ = ["StreamTracker", "StreamsClosing", "TooManyStreams", "event_stream", "format_event"]
