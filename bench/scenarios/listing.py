"""Listing tasks: a page of ``GET /ops/tasks`` when the in-process store holds 100,000 tasks,
for every filter (none and each status), the first page and a page from a cursor in the
middle. No peer: Flask-SSE keeps no tasks.

The app runs in this process and is called as gunicorn calls it (the WSGI call): no network,
only the request's own work, which is as long as it blocks the worker's event loop; timed in CPU
time, the least of a page's requests, so that the machine's other work does not count. The
figure is the slowest page's; the ratio is against the same page when the store holds a
tenth as many tasks, since a page should cost the same whatever the store holds.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

from ..procs import say
from ..report import Row, number, verdict
from ..servers import ADMIN, STREAM_SECRET

LIMIT = 50  # the API's default page
RUNNING = 20  # the oldest tasks stay running: a rare status, at the far end of the store
TARGET_MS = 2.0


@dataclasses.dataclass(frozen=True)
class Scale:
    tasks: int
    repeats: int  # requests per page, per run
    runs: int


FULL = Scale(tasks=100_000, repeats=50, runs=3)
QUICK = Scale(tasks=20_000, repeats=5, runs=1)


def filled_app(count: int):
    """An app whose in-process store holds ``count`` tasks: the oldest running, one in 20
    queued, the others ended (one in 7 failed, one in 11 canceled, the rest done)."""
    from app import Settings, create_app
    from app.store import MemoryStore, TaskStatus

    store = MemoryStore()
    for n in range(count):
        task_id = store.create_task(f"task {n}", None, "dev").id
        if n >= RUNNING and n % 20 == 0:
            continue
        store.mark_running(task_id)
        if n >= RUNNING:
            status = (TaskStatus.FAILED if n % 7 == 0 else
                      TaskStatus.CANCELED if n % 11 == 0 else TaskStatus.DONE)
            store.finish(task_id, status, {"reason": "bench"})
    settings = Settings(admin_token=ADMIN, stream_secrets=(STREAM_SECRET,))
    return create_app(settings, store=store)


def pages(count: int) -> dict[str, str]:
    """Each page measured, by name: the query of its request."""
    from app.store import TaskStatus

    found = {}
    for status in (None, *TaskStatus):
        name = status.value if status else "all"
        query = f"/ops/tasks?limit={LIMIT}" + (f"&status={status.value}" if status else "")
        found[name] = query
        found[f"{name}, from the middle"] = f"{query}&cursor={count // 2}"
    return found


def time_pages(app, count: int, repeats: int) -> dict[str, float]:
    """The least CPU time of each page's requests, in milliseconds, as timeit takes the
    best of its runs: the request's own work, which holds the event loop, without what the
    machine's other work adds (the wall-clock medians are kept too, as ``<page>_wall``)."""
    from werkzeug.test import EnvironBuilder

    times, answers = {}, []

    def start_response(status, headers):
        answers.append(status)

    for name, query in pages(count).items():
        # The WSGI call alone, as gunicorn makes it: the test client's own work left out.
        environ = EnvironBuilder(query, headers={"X-Admin-Token": ADMIN}).get_environ()
        cpu, wall = [], []
        for _ in range(repeats + 1):  # the first is a warm-up
            started, started_cpu = time.perf_counter(), time.thread_time()
            body = b"".join(app(dict(environ), start_response))
            cpu.append(time.thread_time() - started_cpu)
            wall.append(time.perf_counter() - started)
            if answers[-1] != "200 OK" or b'"id"' not in body:
                raise RuntimeError(f"{query}: {answers[-1]} {body[:200]!r}")
        times[name] = min(cpu[1:]) * 1000
        times[f"{name}_wall"] = statistics.median(wall[1:]) * 1000
    return times


def run(scale: Scale) -> list[dict]:
    """Both stores filled once; ``runs`` rounds timing every page of each; one dict a run."""
    small = scale.tasks // 10
    say(f"listing: filling stores of {scale.tasks:,} and {small:,} tasks")
    apps = {"large": filled_app(scale.tasks), "small": filled_app(small)}
    results = []
    for n in range(scale.runs):
        order = ("large", "small") if n % 2 == 0 else ("small", "large")
        timed = {side: time_pages(apps[side], scale.tasks if side == "large" else small,
                                  scale.repeats) for side in order}
        slowest = max((name for name in timed["large"] if not name.endswith("_wall")),
                      key=timed["large"].get)
        results.append({"slowest_ms": timed["large"][slowest], "slowest_page": slowest,
                        "same_page_small_ms": timed["small"][slowest],
                        "ratio": timed["large"][slowest] / timed["small"][slowest],
                        **{f"{name}_ms": ms for name, ms in timed["large"].items()}})
    for app in apps.values():
        app.extensions["services"].executor.shutdown(grace=1)
    return results


def describe(scale: Scale) -> str:
    return (f"the in-process store filled with {scale.tasks:,} tasks (the {RUNNING} oldest "
            "running, one in 20 queued, the others ended: one in 7 failed, one in 11 "
            f"canceled, the rest done); `GET /ops/tasks?limit={LIMIT}` without a filter and "
            "with each status, first page and from a cursor in the middle, each a WSGI call "
            f"in the harness's process; the least CPU time of {scale.repeats} requests per "
            f"page, {scale.runs} run(s); the ratio is against the same page with "
            f"{scale.tasks // 10:,} tasks.")


def rows(runs: dict, scale: Scale) -> list[Row]:
    slowest, ratio = runs.get("slowest_ms"), runs.get("ratio")
    return [Row(f"Task list page (`GET /ops/tasks`, {LIMIT} tasks) among {scale.tasks:,} "
                "in the in-process store, slowest filter (ratio: ÷ the same page among a "
                "tenth as many)",
                f"{number(slowest, 2)} ms", "– (no tasks)",
                f"{ratio:.2f}" if ratio else "–",
                verdict(f"≤ {TARGET_MS:g} ms", None if slowest is None
                        else slowest <= TARGET_MS))]
