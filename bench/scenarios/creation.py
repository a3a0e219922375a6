"""Task creation: ``POST /ops/tasks`` requests per second against the same server's ceiling
on its trivial endpoint (``GET /healthz``), measured alternately in one server with wrk.

The created tasks wait in the queue (one executor worker, ticks an hour apart), so that the
rate measured is the creation's alone, not the dev runner's work beside it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..load import wrk
from ..report import Row, number, ratio
from ..servers import ADMIN, Ours

BODY = {"title": "Build the bench", "body": "created by wrk"}


@dataclasses.dataclass(frozen=True)
class Scale:
    seconds: float
    connections: int
    runs: int


FULL = Scale(seconds=5, connections=50, runs=3)
QUICK = Scale(seconds=2, connections=20, runs=2)


def post_script(logdir: Path) -> Path:
    """A wrk script that POSTs a task with the admin token."""
    script = logdir / "create-task.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["X-Admin-Token"] = "{ADMIN}"\n')
    return script


def run(scale: Scale, logdir: Path) -> list[dict]:
    """One server; ``runs`` alternating pairs of wrk runs; one dict per pair."""
    settings = {"OPS_QUEUE_SIZE": "100000", "OPS_WORKERS": "1", "OPS_DEV_TICK_SECONDS": "3600"}
    script = post_script(logdir)
    results = []
    with Ours(logdir, **settings) as server:
        base = f"http://127.0.0.1:{server.port}"
        wrk(logdir, f"{base}/healthz", seconds=1, connections=scale.connections)  # warm-up
        targets = {"healthz": (f"{base}/healthz", None), "create": (f"{base}/ops/tasks", script)}
        for n in range(scale.runs):
            result = {}
            for which in ("healthz", "create") if n % 2 == 0 else ("create", "healthz"):
                url, lua = targets[which]
                cpu = server.cpu_seconds()
                rate, count = wrk(logdir, url, seconds=scale.seconds,
                                  connections=scale.connections, script=lua)
                result[f"{which}_per_s"] = rate
                result[f"{which}_cpu_us"] = (server.cpu_seconds() - cpu) / count * 1e6
            result["ratio"] = result["create_per_s"] / result["healthz_per_s"]
            results.append(result)
    return results


def describe(scale: Scale) -> str:
    return (f"wrk, one thread, {scale.connections} keep-alive connections, {scale.seconds:g} s "
            f"per measurement, {scale.runs} alternating pairs in one server; tasks queue "
            "behind one executor worker (OPS_WORKERS=1, OPS_QUEUE_SIZE=100000).")


def rows(runs: dict, scale: Scale) -> list:
    rate, ceiling = runs.get("create_per_s"), runs.get("healthz_per_s")
    share = runs.get("ratio")
    create_cpu, healthz_cpu = runs.get("create_cpu_us"), runs.get("healthz_cpu_us")
    return [Row("Task creation `POST /ops/tasks` (peer column: the same server's `/healthz`)",
                f"{number(rate, 0)} req/s", f"{number(ceiling, 0)} req/s",
                f"{share:.2f}" if share else "–",
                "reported (the 0.70 target is retired: bench/notes.md)"),
            Row("CPU per request, `POST /ops/tasks` (peer column: `/healthz`)",
                f"{number(create_cpu, 0)} µs", f"{number(healthz_cpu, 0)} µs",
                ratio(create_cpu, healthz_cpu))]
