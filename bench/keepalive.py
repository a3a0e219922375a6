"""CPU per request of the Supabase store's client under gevent, against a server that keeps
connections alive (as PostgREST does), with and without the store's bound on idle
connections: ``python -m bench.keepalive``. Not part of ``make bench`` (it measures one
setting of ours, not the product against the peer); bench/notes.md has its figures.

Each measurement is a fresh gevent-patched process in which 50 greenlets share the store's
client (``SupabaseRest``), as a worker's pollers and writers do, each sending 40 event reads
10 ms apart to the tests' keep-alive server (``tests/support/keepalive_server.py``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .procs import Process, free_port, wait_answering

ROOT = Path(__file__).resolve().parent.parent

CLIENT = """
from gevent import monkey; monkey.patch_all()
import sys, time, gevent
from app.store.supabase.rest import SupabaseRest
port, greenlets, each, idle = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rest = SupabaseRest(f"http://127.0.0.1:{port}", "bench-service-role-key-0123456789", 10,
                    max_idle_connections=None if idle == "all" else int(idle))
def send():
    for _ in range(each):
        rest.run(rest.table("va_task_events").select("id").eq("task_id", 1))
        gevent.sleep(0.01)
gevent.joinall([gevent.spawn(send) for _ in range(greenlets)])  # warm-up: the pool fills
started = time.process_time()
gevent.joinall([gevent.spawn(send) for _ in range(greenlets)])
print((time.process_time() - started) / (greenlets * each) * 1e6)
"""


def measure(port: int, idle: str, greenlets: int = 50, each: int = 40) -> float:
    """CPU microseconds per request, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", CLIENT, str(port), str(greenlets), str(each),
                          idle], cwd=ROOT, check=True, capture_output=True, text=True,
                         timeout=300)
    return float(out.stdout.split()[-1])


def main() -> None:
    from app.store.supabase.rest import MAX_IDLE_CONNECTIONS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = {"all idle kept": "all",
                f"{MAX_IDLE_CONNECTIONS} idle kept": str(MAX_IDLE_CONNECTIONS)}
    found = {name: [] for name in settings}
    port = free_port()
    with tempfile.TemporaryDirectory() as logdir:
        server = Process("keepalive-server", [sys.executable, "-m",
                                              "tests.support.keepalive_server", str(port)],
                         logdir=Path(logdir), cwd=ROOT)
        try:
            wait_answering(f"http://127.0.0.1:{port}/", server.popen,
                           name="the keep-alive server", timeout=10, log=server.log)
            for _ in range(args.runs):  # alternately, the machine being shared
                for name, idle in settings.items():
                    found[name].append(measure(port, idle))
        finally:
            server.stop()
    for name, values in found.items():
        print(f"{name}: {statistics.median(values):,.0f} µs of CPU per request "
              f"(runs: {', '.join(f'{v:,.0f}' for v in values)})")


if __name__ == "__main__":
    main()
