"""``python -m tests.support.gateway --port N --dsn DSN --key KEY`` (from the repository root)."""

import argparse

from .server import serve

parser = argparse.ArgumentParser(description="A PostgREST stand-in for the tests")
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--dsn", required=True)
parser.add_argument("--key", required=True)
options = parser.parse_args()
serve(options.host, options.port, options.dsn, options.key)
