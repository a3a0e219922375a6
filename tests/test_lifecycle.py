"""Stopping the real server: a stop or a reload mid-task ends tasks and streams cleanly, in
time, and with a clean log."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from app.lifecycle import handle_signals, shutdown
from app.store import TaskStatus
from tests.support.api import ADMIN, Admin, make_settings
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.runners import (
    RECIPES,
    kill_leftovers,
    pids_in,
    process_alive,
    recipe_user_env,
)
from tests.support.sse import parse_messages

# What gunicorn writes when a worker did not end cleanly: a traceback ("Exception in worker
# process", BlockingSwitchOutError, "Exception ignored in ..."), an exit code other than 0
# ("Worker (pid:N) exited with code 255."), a signal ("was sent SIGKILL!"), or a wait cut
# short ("Worker graceful timeout").
UNCLEAN = ("Traceback", "Exception", "Error", "exited with code", "was sent",
           "graceful timeout", "CRITICAL")


def assert_clean_exit(log: str, *worker_pids: int) -> None:
    """Each worker logged its exit, and nothing in the log says a process ended badly (a
    worker's exit code is logged only when it is not 0)."""
    unclean = [line for line in log.splitlines() if any(word in line for word in UNCLEAN)]
    assert not unclean, log
    for pid in worker_pids:
        assert f"Worker exiting (pid: {pid})" in log, log


@pytest.fixture
def running_app(make_app):
    """An app without gevent (threads), with a task that runs until it is stopped."""
    app = make_app(make_settings(dev_tick_seconds=60))
    task_id = Admin(app.test_client()).create("long")["id"]
    store = app.extensions["services"].store
    wait_until(lambda: store.get_task(task_id).status == TaskStatus.RUNNING)
    return app, task_id


@pytest.fixture
def own_signal_handlers():
    """The test process's handlers of the stop signals, put back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                    signal.SIGQUIT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_shutdown_runs_once_however_often_it_is_called(running_app):
    app, task_id = running_app
    services = app.extensions["services"]
    closes = []
    close = services.store.close
    services.store.close = lambda: (closes.append(1), close())
    callers = [threading.Thread(target=shutdown, args=(app, 5)) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(20)
    assert not any(caller.is_alive() for caller in callers)
    shutdown(app, 5)  # after the end: returns at once
    assert closes == [1] and services.streams.closing
    task = services.store.get_task(task_id)
    assert (task.status, task.error) == (TaskStatus.FAILED, "shutdown")


def test_sigterm_without_gevent_starts_the_shutdown(running_app, own_signal_handlers):
    """The handlers also work unpatched: TERM calls gunicorn's handler and ends the tasks in
    a thread; an INT or QUIT once the worker is stopping is not passed on."""
    app, task_id = running_app
    calls = []
    handle_signals(app, 5, stop=lambda sig, frame: calls.append(("stop", sig)),
                   quit=lambda sig, frame: calls.append(("quit", sig)))
    signal.raise_signal(signal.SIGTERM)
    store = app.extensions["services"].store
    wait_until(lambda: store.get_task(task_id).status == TaskStatus.FAILED)
    assert store.get_task(task_id).error == "shutdown"
    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGQUIT)
    assert calls == [("stop", signal.SIGTERM)]


def test_only_the_first_int_or_quit_is_passed_on(running_app, own_signal_handlers):
    """Ctrl-C: INT from the terminal, then QUIT from the master; gunicorn's quit handler
    exits the process, so a second one would cut the first one's shutdown short."""
    app, _ = running_app
    calls = []
    handle_signals(app, 5, stop=lambda sig, frame: calls.append(("stop", sig)),
                   quit=lambda sig, frame: calls.append(("quit", sig)))
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGINT):
        signal.raise_signal(sig)
    assert calls == [("quit", signal.SIGINT)]


@pytest.mark.live
def test_sigterm_fails_running_tasks_with_shutdown_and_closes_streams():
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1", "OPS_DEV_TICK_SECONDS": "60",
           "OPS_HEARTBEAT_SECONDS": "0.5", "OPS_GRACEFUL_TIMEOUT": "10", "OPS_WORKERS": "1"}
    with GunicornServer(env) as server:
        [worker] = server.worker_pids()
        running = server.admin.create("long")["id"]
        queued = server.admin.create("waits")["id"]
        seen = {running: [], queued: []}

        def watch(task_id):
            with server.admin.stream(task_id) as response:
                for message in parse_messages(response.iter_lines(decode_unicode=True)):
                    if "data" in message:
                        seen[task_id].append((message["event"], message["data"]))

        watchers = [threading.Thread(target=watch, args=(t,)) for t in seen]
        for watcher in watchers:
            watcher.start()
        wait_until(lambda: server.admin.stats()["streams_open"] == 2)
        stopped_at = time.monotonic()
        code = server.stop(signal.SIGTERM, timeout=20)
        took = time.monotonic() - stopped_at
        for watcher in watchers:
            watcher.join(20)
        assert code == 0 and took < 10, (code, took, server.log())
        for task_id, events in seen.items():
            kind, data = events[-1]
            assert kind == "failed" and '"reason":"shutdown"' in data, (task_id, events)
        assert [k for k, _ in seen[running]] == ["created", "status", "failed"]
        assert [k for k, _ in seen[queued]] == ["created", "failed"]
        assert_clean_exit(server.log(), worker)


@pytest.mark.live
def test_sigterm_on_supabase_streams_resume_on_another_server(supabase_env):
    """Two servers share Supabase; SIGTERM one mid-task: its task ends failed (shutdown),
    its streams end cleanly, and a client resumes on the other with Last-Event-ID."""
    env = {**supabase_env, "SETTINGS_ADMIN_TOKEN": ADMIN, "DEV_LOCAL_LLM": "1",
           "OPS_DEV_TICK_SECONDS": "60", "OPS_HEARTBEAT_SECONDS": "0.5",
           "OPS_GRACEFUL_TIMEOUT": "10"}
    with GunicornServer(env) as doomed, GunicornServer(env) as other:
        doomed_workers = doomed.worker_pids()
        task_id = doomed.admin.create("long")["id"]
        seen = []
        with doomed.admin.stream(task_id) as response:
            messages = parse_messages(response.iter_lines(decode_unicode=True))
            for message in messages:
                if "data" in message:
                    seen.append((int(message["id"]), message["event"]))
                    if message["event"] == "status":
                        break
            stopped_at = time.monotonic()
            threading.Thread(target=doomed.stop, args=(signal.SIGTERM, 20)).start()
            for message in messages:  # the stream ends cleanly, with or without the end event
                if "data" in message:
                    seen.append((int(message["id"]), message["event"]))
        assert time.monotonic() - stopped_at < 10
        resume = {"Last-Event-ID": str(seen[-1][0])}
        with other.admin.stream(task_id, headers=resume) as response:
            seen += [(int(m["id"]), m["event"])
                     for m in parse_messages(response.iter_lines(decode_unicode=True))
                     if "data" in m]
        assert [kind for _, kind in seen] == ["created", "status", "failed"]
        final = other.admin.task(task_id)
        assert final["status"] == "failed" and final["error"] == "shutdown"
        wait_until(lambda: doomed.process.poll() is not None, timeout=20)
        assert doomed.process.returncode == 0
        assert_clean_exit(doomed.log(), *doomed_workers)


# How each stop reaches gunicorn: `systemctl stop` and `kill -TERM` (TERM), `systemctl reload`
# (HUP: new workers, and TERM for the old ones), `kill -QUIT` (quick stop), and Ctrl-C in the
# terminal of `make dev`, which sends INT to every process of the group (the worker also gets
# QUIT from the master).
def send(server: GunicornServer, name: str) -> None:
    if name == "INT":
        os.killpg(server.process.pid, signal.SIGINT)
    else:
        os.kill(server.process.pid, getattr(signal, f"SIG{name}"))


@pytest.fixture
def spawned():
    """Pids of the recipes' processes; any still alive at the end is killed."""
    pids: list[int] = []
    yield pids
    kill_leftovers(pids)


@pytest.mark.live
@pytest.mark.parametrize("stop", ["TERM", "HUP", "INT", "QUIT"])
def test_a_stop_or_reload_ends_tasks_and_streams_and_logs_no_crash(stop, spawned):
    """A running recipe whose child ignores SIGTERM, a queued task, a stream on each: the
    tasks end ``failed`` (shutdown), the child is killed, the streams end after the terminal
    event, the worker exits 0, and the log holds no traceback. After a reload a new worker
    serves."""
    env = {"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_RECIPES": str(RECIPES),
           "OPS_RECIPE_KILL_GRACE_SECONDS": "1", "OPS_HEARTBEAT_SECONDS": "0.5",
           "OPS_GRACEFUL_TIMEOUT": "10", "OPS_WORKERS": "1", **recipe_user_env()}
    with GunicornServer(env) as server:
        [worker] = server.worker_pids()
        running = server.admin.create("stubborn", recipe="stubborn")["id"]
        queued = server.admin.create("waits", recipe="sleep")["id"]
        seen: dict[int, list[tuple[str, dict]]] = {running: [], queued: []}

        def watch(task_id):
            with server.admin.stream(task_id) as response:
                for message in parse_messages(response.iter_lines(decode_unicode=True)):
                    if "data" in message:
                        event = json.loads(message["data"])
                        seen[task_id].append((event["kind"], event["data"]))

        watchers = [threading.Thread(target=watch, args=(t,)) for t in seen]
        for watcher in watchers:
            watcher.start()

        def children():
            return pids_in([line for kind, data in seen[running] if kind == "log"
                            for line in data["lines"]])

        spawned += wait_until(lambda: len(children()) == 2 and children(),
                              message="the recipe and its child to start")
        wait_until(lambda: server.admin.stats()["streams_open"] == 2)
        started = time.monotonic()
        send(server, stop)
        for watcher in watchers:
            watcher.join(20)
        took = time.monotonic() - started
        assert not any(w.is_alive() for w in watchers)
        workers = [worker]
        if stop == "HUP":
            wait_until(lambda: f"Worker exiting (pid: {worker})" in server.log(),
                       message=server.log)
            [new_worker] = wait_until(lambda: [p for p in server.worker_pids() if p != worker],
                                      message="a new worker")
            assert server.admin.create("after", recipe="sleep")["id"] == 1  # a fresh worker's store
            workers.append(new_worker)
            # "Worker exiting" is logged before the old worker's last clean-up; the TERM sent
            # below reaches the whole group, and a process that late in its exit no longer
            # has its handlers (Python restores the defaults): let it be gone first.
            wait_until(lambda: worker not in server.worker_pids(), message="the old worker's exit")
            code = server.stop(signal.SIGTERM, timeout=20)
        else:
            code = server.process.wait(20)
        assert code == 0 and took < 10, (code, took, server.log())
        kinds = [kind for kind, _ in seen[running]]  # its two lines: in one log event or two
        assert kinds[:2] == ["created", "status"] and kinds[-1] == "failed"
        assert set(kinds[2:-1]) == {"log"} and len(children()) == 2
        assert [kind for kind, _ in seen[queued]] == ["created", "failed"]
        assert seen[running][-1][1]["reason"] == "shutdown"
        assert seen[running][-1][1]["stopped_with"] == "SIGKILL"  # after the kill grace
        assert seen[queued][-1][1]["reason"] == "shutdown"
        assert not any(process_alive(pid) for pid in spawned)
        assert_clean_exit(server.log(), *workers)
