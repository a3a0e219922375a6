"""What the tests (and the benchmark) share; none of it is collected as tests.

- ``processes``: free ports, ``wait_until``, waiting for a server to answer, stopping a
  process group, ``Service`` (a program started for a ``with`` block).
- ``live``: ``GunicornServer``, the service as users run it (``server.admin`` calls its API).
- ``api``: the admin token, test settings, ``Admin`` (Flask test client), ``LiveAdmin``.
- ``clock``: ``FakeClock``, the ``clock`` fixture's class.
- ``sse``: parsing event streams from the wire format.
- ``postgres``, ``gateway`` (the PostgREST stand-in, ``python -m tests.support.gateway``),
  ``supabase_fixtures``, ``keepalive_server``: the Supabase store's outside world.
- ``nginx``, ``browser``, ``fake_llm``: nginx and ``curl -N``, Chromium, a model server.
- ``runners``, ``recipes.toml``, ``recipe_child.py``: the recipe runner's test commands.
- ``soak``, ``openapi_checks``: the soak run's clients, the fuzz test's schemathesis hooks.
"""
