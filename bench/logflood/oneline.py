"""The baseline of the log flood scenario: the recipe runner sending one ``log`` event per line
(one store write each), as it did before batching, without the old rate limit. The events have
the batched format, one line each, so the same client reads both.

``gunicorn -c gunicorn.conf.py bench.logflood.oneline:app``
"""

from app import create_app
from app.executor.runners import output, recipe


class OneEventPerLine(output.OutputLog):
    """Every line is written as soon as it is complete, alone."""

    def _add(self, line) -> None:
        self._emit([("log", {"stream": line.stream, "first_line": line.number,
                             "lines": [line.text]})])


recipe.OutputLog = OneEventPerLine
app = create_app()
