"""The Server-Sent Events stream of a task's events."""

from .sse import StreamTracker, event_stream, format_event

__all__ = ["StreamTracker", "event_stream", "format_event"]
