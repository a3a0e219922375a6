"""The LLM runner: a model server's streamed answer as a task's events.

``runner.py`` sends the request and turns failures into reasons; ``wire.py`` reads the
OpenAI streaming format; ``answer.py`` batches the text into events; ``connection.py`` ends
the connection when the task is asked to stop.
"""

from .runner import LLMRunner

__all__ = ["LLMRunner"]
