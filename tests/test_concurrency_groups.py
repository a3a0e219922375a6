"""Concurrency groups through the API, on the in-process store and on the Supabase store
(plain threads, the Flask test client): one deploy of a service at a time under each policy,
other services and other tasks free to run, waiting tasks holding no worker.

Each deploy runs ``recipe_child.py gate PATH``, which blocks until the test creates PATH: a
task runs exactly as long as the test wants it to, and the tests wait on conditions."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import pytest

from app import create_app
from app.recipes import load_recipes
from tests.support.api import Admin, make_settings
from tests.support.processes import wait_until
from tests.support.runners import HERE, ended_task

CHILD = HERE / "recipe_child.py"
TERMINAL = {"done", "failed", "canceled"}


def recipe_file(folder: Path, python: str = sys.executable) -> Path:
    """Deploys of a service under each policy, and a build in no group; all wait for a gate."""
    argv = json.dumps([python, str(CHILD), "gate", "{gate}"])
    params = ('[recipes.{name}.params.gate]\npattern = "/[A-Za-z0-9_./-]+"\n'
              '[recipes.{name}.params.service]\npattern = "[a-z]+"\n')
    text = ""
    for name, policy in (("deploy", None), ("deploy-reject", "reject"),
                         ("deploy-cancel", "cancel-running")):
        text += f'[recipes.{name}]\nargv = {argv}\nconcurrency = "deploy-{{service}}"\n'
        if policy:
            text += f'concurrency_policy = "{policy}"\n'
        text += params.format(name=name)
    text += f'[recipes.build]\nargv = {argv}\n[recipes.build.params.gate]\n'
    text += 'pattern = "/[A-Za-z0-9_./-]+"\n'
    path = folder / "recipes.toml"
    path.write_text(text)
    return path


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Deploys:
    """Deploys through one app's API, each with a gate of its own under ``folder``."""

    def __init__(self, app, folder: Path):
        self.admin = Admin(app.test_client())
        self.folder = folder
        self.count = 0

    def post(self, recipe="deploy", service="api"):
        self.count += 1
        gate = self.folder / f"gate-{self.count}"
        response = self.admin.post("/ops/tasks", json={
            "title": f"{recipe} {service}", "recipe": recipe,
            "params": {"service": service, "gate": str(gate)}})
        return response, gate

    def create(self, recipe="deploy", service="api") -> tuple[int, Path]:
        response, gate = self.post(recipe, service)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["id"], gate

    def build(self) -> tuple[int, Path]:
        self.count += 1
        gate = self.folder / f"gate-{self.count}"
        task = self.admin.create("build", recipe="build", params={"gate": str(gate)})
        return task["id"], gate

    def get(self, task_id: int) -> dict:
        return self.admin.get(f"/ops/tasks/{task_id}").get_json()

    def wait_status(self, task_id: int, *statuses: str, timeout: float = 20) -> dict:
        return wait_until(lambda: (t := self.get(task_id))["status"] in statuses and t,
                          timeout=timeout,
                          message=lambda: f"task {task_id} {'/'.join(statuses)}: "
                                          f"{self.get(task_id)}")

    def wait_ended(self, task_id: int) -> dict:
        return self.wait_status(task_id, *TERMINAL)


def in_order(tasks: list[dict]) -> None:
    """Each task started after the one before it had finished."""
    for before, after in zip(tasks, tasks[1:]):
        assert moment(after["started_at"]) >= moment(before["finished_at"]), (before, after)


@pytest.fixture(params=["memory", pytest.param("supabase", marks=pytest.mark.live)])
def make_deploys(request, tmp_path):
    """A factory: Deploys on an app with the test recipes (and these settings), on each store;
    each app is shut down afterwards, and its store closed."""
    recipes = load_recipes(recipe_file(tmp_path))
    extra = {}
    if request.param == "supabase":
        gateway = request.getfixturevalue("supabase_db")
        extra = dict(supabase_url=gateway.url, supabase_key=gateway.key,
                     supabase_poll_seconds=0.05, supabase_lease_seconds=0.3,
                     supabase_orphan_seconds=1.5)
    apps = []

    def make(**overrides) -> Deploys:
        settings = make_settings(**{"dev_mode": False, "recipes": recipes,
                                    "recipe_kill_grace": 0.5, **extra, **overrides})
        apps.append(create_app(settings))
        deploys = Deploys(apps[-1], tmp_path)
        deploys.shared = request.param == "supabase"
        return deploys

    yield make
    for app in apps:
        app.extensions["services"].executor.shutdown(grace=5)
        app.extensions["services"].store.close()


def test_queued_deploys_of_a_service_run_one_at_a_time_in_creation_order(make_deploys):
    deploys = make_deploys()
    ids, gates = zip(*(deploys.create() for _ in range(3)))
    deploys.wait_status(ids[0], "running")
    for task_id in ids[1:]:
        waiting = deploys.wait_status(task_id, "queued")
        assert waiting["concurrency_group"] == "deploy-api"
        wait_until(lambda task_id=task_id: deploys.get(task_id)["waiting_for"] == ids[0],
                   timeout=10, message="waiting_for to name the running deploy")
    assert deploys.get(ids[0])["waiting_for"] is None
    for gate in reversed(gates):  # the later ones are free to finish at once, once started
        gate.touch()
    ended = [deploys.wait_ended(task_id) for task_id in ids]
    assert [t["status"] for t in ended] == ["done"] * 3
    assert all(t["waiting_for"] is None for t in ended)
    in_order(ended)
    kinds = [e.kind for e in deploys.admin.client.application.extensions["services"]
             .store.events_after(ids[2], 0, 1000)]
    # In the shared queue nobody writes for a queued task: what it waits for is read from the
    # group's lock.
    assert kinds[:2] == (["created", "status"] if deploys.shared else ["created", "waiting"])


def test_deploys_of_other_services_run_side_by_side(make_deploys):
    deploys = make_deploys()
    (api, api_gate), (web, web_gate) = deploys.create(service="api"), deploys.create(
        service="web")
    deploys.wait_status(api, "running")
    deploys.wait_status(web, "running")
    assert deploys.get(web)["concurrency_group"] == "deploy-web"
    api_gate.touch()
    web_gate.touch()
    assert deploys.wait_ended(api)["status"] == deploys.wait_ended(web)["status"] == "done"


def test_waiting_deploys_hold_no_worker(make_deploys):
    deploys = make_deploys(workers=2)
    created = [deploys.create() for _ in range(3)]
    deploys.wait_status(created[0][0], "running")
    build, build_gate = deploys.build()
    # One worker runs the first deploy, the other is free for the build at once: the two
    # deploys waiting for their group do not sit on it.
    deploys.wait_status(build, "running", timeout=10)
    assert [deploys.get(t)["status"] for t, _ in created[1:]] == ["queued", "queued"]
    assert deploys.get(build)["concurrency_group"] is None
    build_gate.touch()
    for _, gate in created:
        gate.touch()
    ended = [deploys.wait_ended(t) for t, _ in created]
    assert deploys.wait_ended(build)["status"] == "done"
    in_order(ended)


def test_reject_refuses_while_the_group_is_busy(make_deploys):
    deploys = make_deploys()
    first, gate = deploys.create("deploy-reject")
    deploys.wait_status(first, "running")
    before = deploys.admin.get("/ops/tasks").get_json()["tasks"]
    response, _ = deploys.post("deploy-reject")
    assert response.status_code == 409
    answer = response.get_json()
    assert answer["error"] == f"group deploy-api is busy with task {first}"
    assert (answer["concurrency_group"], answer["busy_with"]) == ("deploy-api", first)
    assert deploys.admin.get("/ops/tasks").get_json()["tasks"] == before  # nothing created
    other, other_gate = deploys.create("deploy-reject", service="web")  # another group
    gate.touch()
    other_gate.touch()
    done = deploys.wait_ended(first)
    assert done["status"] == "done"
    later, later_gate = deploys.create("deploy-reject")  # the group is free again
    later_gate.touch()
    again = deploys.wait_ended(later)
    assert again["status"] == "done"
    assert deploys.wait_ended(other)["status"] == "done"
    in_order([done, again])


def test_cancel_running_cancels_the_holder_then_runs(make_deploys):
    deploys = make_deploys()
    first, _ = deploys.create("deploy-cancel")
    deploys.wait_status(first, "running")
    second, gate = deploys.create("deploy-cancel")
    canceled = deploys.wait_ended(first)
    assert canceled["status"] == "canceled"
    creator = deploys.get(second)["created_by"]
    assert creator and canceled["canceled_by"] == creator
    assert canceled["error"] == f"canceled by {creator}"
    running = deploys.wait_status(second, "running")
    gate.touch()
    done = deploys.wait_ended(second)
    assert done["status"] == "done"
    assert moment(running["started_at"]) >= moment(canceled["finished_at"])


def test_a_waiting_deploy_canceled_lets_the_next_one_in(make_deploys):
    deploys = make_deploys()
    (first, first_gate), (second, _), (third, third_gate) = (
        deploys.create() for _ in range(3))
    deploys.wait_status(first, "running")
    deploys.wait_status(second, "queued")
    response = deploys.admin.post(f"/ops/tasks/{second}/cancel")
    assert response.status_code == 200 and response.get_json()["status"] == "canceled"
    third_gate.touch()
    first_gate.touch()
    assert deploys.wait_ended(third)["status"] == "done"
    in_order([deploys.wait_ended(first), deploys.get(third)])
    assert deploys.get(second)["waiting_for"] is None


def test_the_recipes_show_their_group_and_policy(make_deploys):
    deploys = make_deploys()
    recipes = {r["name"]: r for r in deploys.admin.get("/ops/recipes").get_json()["recipes"]}
    assert (recipes["deploy"]["concurrency"], recipes["deploy"]["concurrency_policy"]) == (
        "deploy-{service}", "queue")
    assert recipes["deploy-cancel"]["concurrency_policy"] == "cancel-running"
    assert (recipes["build"]["concurrency"], recipes["build"]["concurrency_policy"]) == (
        None, None)


# -- the executor alone (in-process store): every ending gives the group back -----------------

@pytest.fixture
def make_executor(make_executor):
    """The suite's executor factory, with two workers and a quick watcher."""
    return lambda scripts, **options: make_executor(
        scripts, **{"workers": 2, "queue_size": 10, "watch_interval": 0.05, **options})


GROUP = {"concurrency_group": "deploy-api"}


@pytest.mark.parametrize("ending", ["done", "failed", "timeout", "canceled", "not started"])
def test_every_ending_gives_the_group_back(make_executor, monkeypatch, ending):
    import threading

    from app.executor import TaskFailed
    from app.store import StoreUnavailable

    started, release = threading.Event(), threading.Event()

    def hold(ctx):
        started.set()
        ctx.sleep(30)

    def fail(ctx):
        release.wait(10)
        raise TaskFailed("exit code 1")

    scripts = {"done": lambda ctx: release.wait(10) and None, "failed": fail, "timeout": hold,
               "canceled": hold, "not started": hold, "next": lambda ctx: None}
    executor = make_executor(scripts, task_timeout=1.0 if ending == "timeout" else None)
    if ending == "not started":
        mark_running = executor.store.mark_running

        def unreachable(task_id, worker=None):
            if task_id == 1:
                raise StoreUnavailable("the store is away")
            return mark_running(task_id, worker)

        monkeypatch.setattr(executor.store, "mark_running", unreachable)
    first = executor.submit(ending, None, "scripted", GROUP)
    second = executor.submit("next", None, "scripted", GROUP)
    if ending != "not started":  # that one gave the group back at once
        assert second.waiting_for == first.id
        assert executor.store.get_task(second.id).status.value == "queued"
    release.set()
    if ending == "canceled":
        assert started.wait(10)
        executor.cancel(first.id, "ada")
    assert ended_task(executor, second.id).status.value == "done"
    assert executor.locks.holder("deploy-api") is None
    if ending != "not started":
        assert ended_task(executor, first.id).status.value == (
            "failed" if ending == "timeout" else ending)


def test_shutdown_ends_waiting_tasks_and_gives_the_groups_back(make_executor):
    executor = make_executor({"hold": lambda ctx: ctx.sleep(30)})
    running = executor.submit("hold", None, "scripted", GROUP)
    waiting = executor.submit("hold", None, "scripted", GROUP)
    wait_until(lambda: executor.store.get_task(running.id).status.value == "running")
    executor.shutdown(grace=5)
    for task in (running, waiting):
        final = executor.store.get_task(task.id)
        assert (final.status.value, final.error) == ("failed", "shutdown")
    assert executor.locks.holder("deploy-api") is None
    assert executor.stats()["queued"] == 0


def test_inline_runs_a_group_in_order(make_executor):
    order = []
    executor = make_executor({"a": lambda ctx: order.append("a"),
                              "b": lambda ctx: order.append("b")}, inline=True)
    executor.submit("a", None, "scripted", GROUP)
    executor.submit("b", None, "scripted", GROUP)
    assert executor.run_pending() == 2
    assert order == ["a", "b"]
