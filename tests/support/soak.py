"""A soak run against a live server: many tasks, many clients that drop and resume."""

from __future__ import annotations

import itertools
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from .sse import parse_messages


@dataclass
class SoakResult:
    tasks: int = 0
    connections: int = 0
    server_errors: list = field(default_factory=list)
    bad_sequences: list = field(default_factory=list)


def follow(url: str, headers: dict, rng: random.Random, result: SoakResult, lock) -> list:
    """Stream one task to its end, dropping the connection at random and resuming with
    Last-Event-ID; return every event seen as (id, kind)."""
    seen: list = []
    while True:
        resume = {"Last-Event-ID": str(seen[-1][0])} if seen else {}
        drop_after = rng.choice([1, 2, 3, None])
        with lock:
            result.connections += 1
        with requests.get(url, headers={**headers, **resume}, stream=True,
                          timeout=60) as response:
            if response.status_code >= 500:
                with lock:
                    result.server_errors.append((url, response.status_code))
                continue
            response.raise_for_status()
            got = 0
            for message in parse_messages(response.iter_lines(decode_unicode=True)):
                if "data" not in message:
                    continue
                seen.append((int(message["id"]), message["event"]))
                got += 1
                if message["event"] in {"done", "failed", "canceled"}:
                    return seen
                if drop_after is not None and got >= drop_after:
                    break  # leaving the with-block closes the socket: a client gone away


def soak(base_url: str, admin_token: str, *, tasks: int, clients: int, expected: list[str],
         seed: int = 7) -> SoakResult:
    """Run ``tasks`` tasks through ``clients`` concurrent clients; each creates a task and
    follows it; every sequence is checked against ``expected`` (kinds, in order, once)."""
    headers = {"X-Admin-Token": admin_token}
    result, lock = SoakResult(), threading.Lock()
    counter = itertools.count()

    def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        session_headers = dict(headers)
        while next(counter) < tasks:
            created = requests.post(f"{base_url}/ops/tasks", json={"title": f"soak {number}"},
                                    headers=session_headers, timeout=60)
            if created.status_code >= 500:
                with lock:
                    result.server_errors.append(("POST", created.status_code))
                continue
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]
            seen = follow(f"{base_url}/ops/tasks/{task_id}/stream", headers, rng, result, lock)
            ids = [event_id for event_id, _ in seen]
            with lock:
                result.tasks += 1
                if [kind for _, kind in seen] != expected or ids != sorted(set(ids)):
                    result.bad_sequences.append((task_id, seen))

    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client, n) for n in range(clients)]:
            future.result()
    return result


def process_usage(pid: int) -> tuple[int, int]:
    """(resident memory in KiB, open file descriptors) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))
