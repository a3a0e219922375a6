"""The benchmark harness: ours against Flask-SSE on Redis, one gevent worker each.

``make bench`` (``python -m bench``) writes ``docs/performance.md``; see ``bench/__main__.py``.
"""
