"""The dashboard with each runner, in headless Chromium against real gunicorn servers.

Three servers: one with recipes and a model (the fake model server of tests/support), one with
recipes only, one in dev mode with recipes. The form must say in words what will run a task,
and a task's answer, result and parameters must read as text, not JSON.
"""

from __future__ import annotations

import pytest

from tests.support.api import ADMIN, SECRET
from tests.support.browser import Dashboard, screenshot
from tests.support.fake_llm import FakeLLM, answer_text
from tests.support.live import GunicornServer
from tests.support.processes import wait_until
from tests.support.runners import HERE, recipe_user_env

pytestmark = pytest.mark.live

RECIPES = HERE / "dashboard-recipes.toml"
WORDS = 40


def server(**env: str) -> GunicornServer:
    return GunicornServer(env={"SETTINGS_ADMIN_TOKEN": ADMIN, "OPS_STREAM_SECRET": SECRET,
                               "OPS_RECIPES": str(RECIPES), **recipe_user_env(), **env})


@pytest.fixture(scope="module")
def model_server():
    with FakeLLM() as model, server(OPS_LLM_BASE_URL=model.url, OPS_LLM_MODEL="fake-model",
                                    OPS_LLM_BATCH_SECONDS="0.2") as running:
        yield running


def options(tab: Dashboard) -> list[list[str]]:
    return tab.page.eval_on_selector_all("#task-recipe option",
                                         "opts => opts.map(o => [o.value, o.textContent])")


def details(tab: Dashboard) -> dict[str, str]:
    """The task's details as shown: label → text."""
    return dict(tab.page.eval_on_selector_all("#task-details > dt", """labels => labels.map(dt =>
        [dt.textContent, dt.nextElementSibling?.innerText ?? ""])"""))


def test_a_model_task_shows_its_answer_as_text(model_server, open_dashboard, tmp_path):
    tab = open_dashboard(model_server, token=ADMIN)
    tab.page.wait_for_selector("#recipe-fields", state="visible")
    assert options(tab)[0] == ["", "The model (no recipe)"]
    assert tab.text("#runner-note").startswith("The model answers this task: the title and notes")

    tab.create("Summarize the release notes", notes=f"fake: words={WORDS} delay=0.05")
    # One block that grows while the answer streams in, not one line per piece.
    tab.page.wait_for_function("""() => {
        const text = document.querySelector('#answer-text').textContent;
        return text.startsWith('word1 ') && !text.includes('word40 ')
            && !document.querySelector('#event-log [data-kind=done]'); }""")
    tab.wait_for_event("done")
    tab.page.wait_for_selector("#task-details .badge-done")
    assert tab.page.eval_on_selector("#answer-text", "box => box.textContent") \
        == answer_text(WORDS)
    log = tab.log()
    assert [e["kind"] for e in log] == ["created", "status", "done"]  # no line per piece
    done = log[-1]["text"]
    assert done.startswith("finished · ") and "Model fake-model" in done
    assert f"Characters {len(answer_text(WORDS))}" in done and "Finish reason stop" in done
    assert "word1" not in done and "{" not in done
    shown = details(tab)
    assert shown["Runner"].startswith("Language model") and shown["Model"] == "fake-model"
    assert all(label[0].isupper() for label in shown), shown
    screenshot(tab.page, "dashboard-model.png", tmp_path, full_page=True)
    tab.assert_clean(ADMIN)


def test_a_recipe_task_shows_labelled_results_and_marked_stderr(model_server, open_dashboard,
                                                                tmp_path):
    tab = open_dashboard(model_server, token=ADMIN)
    tab.page.select_option("#task-recipe", "lines")
    assert tab.text("#runner-note") == ("The server runs the command python3 recipe_child.py "
                                        "lines <count> <code> (recipe lines).")
    assert tab.text("#recipe-description") == ("Print some lines on stdout and on stderr, then "
                                               "exit with a code.")
    hints = tab.page.eval_on_selector_all("#recipe-params .hint",
                                          "hints => hints.map(p => p.textContent)")
    assert hints == ["How many lines to print on each stream. For example: 3",
                     "The exit code. One of 0, 1, 2 or 3."]  # words, not the patterns

    tab.page.fill("#task-title", "Print some lines")
    tab.page.fill("[data-param=count]", "three")
    tab.page.fill("[data-param=code]", "0")
    tab.page.click("#create-button")
    tab.page.wait_for_selector("#create-error", state="visible")
    assert tab.text("#create-error") == ("count does not fit. How many lines to print on each "
                                         "stream. For example: 3")
    tab.page.fill("[data-param=count]", "3")
    tab.page.click("#create-button")
    tab.page.wait_for_selector("#task-details .badge-done")
    tab.wait_for_event("done")
    assert tab.log()[-1]["text"] == "finished · Exit code 0 · Lines 6 · Bytes 36"
    shown = details(tab)
    assert shown["Recipe"] == "lines" and shown["Parameters"] == "count = 3\ncode = 0"
    assert shown["Runner"].startswith("Recipe runner")
    # stderr lines stand out in the output: their own class and an "err" mark.
    tab.page.wait_for_selector(".log-row.stderr")
    rows = tab.page.eval_on_selector_all(".log-row", """rows => rows.map(row => [
        row.classList.contains('stderr'), row.querySelector('.log-stream')?.textContent ?? '',
        row.querySelector('.log-text').textContent])""")
    assert sorted(rows) == sorted([[False, "", f"out {n}"] for n in range(3)]
                                  + [[True, "err", f"err {n}"] for n in range(3)])
    screenshot(tab.page, "dashboard-recipe.png", tmp_path, full_page=True)

    tab.page.fill("#task-title", "Print and fail")
    tab.page.fill("[data-param=count]", "1")
    tab.page.fill("[data-param=code]", "3")
    tab.page.click("#create-button")
    tab.page.wait_for_selector("#task-details .badge-failed")
    tab.wait_for_event("failed")
    assert tab.log()[-1]["text"] == "failed: exit code 3 · Exit code 3 · Lines 2 · Bytes 12"
    assert details(tab)["Reason"] == "exit code 3"
    tab.assert_clean(ADMIN)


def test_a_recipes_only_server_offers_recipes_only(open_dashboard):
    with server() as recipes_only:
        tab = open_dashboard(recipes_only, token=ADMIN)
        tab.page.wait_for_selector("#recipe-fields", state="visible")
        assert options(tab) == [["lines", "Recipe: lines"], ["sleep", "Recipe: sleep"]]
        assert tab.text("#runner-note").startswith(
            "This server runs recipes only. The server runs the command python3 recipe_child.py")
        tab.page.select_option("#task-recipe", "sleep")
        assert "(recipe sleep)" in tab.text("#runner-note")
        tab.assert_clean(ADMIN)


def test_a_server_with_no_runner_says_it_cannot_run_tasks(model_server, open_dashboard):
    tab = open_dashboard(model_server, token=ADMIN)
    tab.page.route(lambda url: url.endswith("/ops/recipes"), lambda route: route.fulfill(json={
        "configured": False, "recipes": [], "dev_mode": False, "default_runner": None}))
    tab.page.reload()
    tab.signed_in()
    tab.page.wait_for_selector("#runner-note.error")
    assert tab.text("#runner-note").startswith("This server has no runner, so it cannot run tasks")
    assert tab.page.is_hidden("#recipe-fields") and tab.page.is_disabled("#create-button")
    tab.assert_clean(ADMIN)


def test_dev_mode_says_the_dev_runner_runs_every_task(open_dashboard):
    with server(DEV_LOCAL_LLM="1", OPS_DEV_TICK_SECONDS="0.1") as dev:
        tab = open_dashboard(dev, token=ADMIN)
        tab.page.wait_for_selector("#runner-note", state="visible")
        assert tab.page.is_hidden("#recipe-fields")  # no recipe would run: none is offered
        assert tab.text("#runner-note") == (
            "Dev mode: this task runs on the dev runner, a stand-in that reports a few ticks, "
            "then finishes. The server's 2 recipes run only outside dev mode.")
        tab.create("Rehearse a deploy")
        tab.wait_for_event("done")
        tab.page.wait_for_selector("#task-details .badge-done")  # the details read it done
        assert details(tab)["Runner"].startswith("Dev runner (dev mode's stand-in")
        assert tab.log()[-1]["text"] == "finished · Ticks 4"
        tab.assert_clean(ADMIN)


def test_a_waiting_deploy_shows_its_group_and_the_task_it_waits_for(open_dashboard, tmp_path):
    recipes = tmp_path / "recipes.toml"
    recipes.write_text('[recipes.deploy]\nargv = ["/usr/local/bin/deploy", "{service}"]\n'
                       'concurrency = "deploy-{service}"\n'
                       '[recipes.deploy.params.service]\npattern = "[a-z]+"\n')
    with server(DEV_LOCAL_LLM="1", OPS_DEV_TICK_SECONDS="30",
                OPS_RECIPES=str(recipes)) as dev:
        first, second = (dev.admin.create("Deploy api", recipe="deploy",
                                          params={"service": "api"})["id"] for _ in range(2))
        tab = open_dashboard(dev, token=ADMIN)
        tab.page.evaluate(f"location.hash = '#/tasks/{second}'")
        tab.page.wait_for_selector("#task-details .badge-queued")
        tab.page.wait_for_function("() => [...document.querySelectorAll('#task-details dt')]"
                                   ".some(dt => dt.textContent === 'Waiting for')")
        # The details are filled in as the task's events arrive: wait for the whole of them.
        shown = wait_until(lambda: (d := details(tab)).get("Concurrency group") == "deploy-api"
                           and d.get("Waiting for") == f"task #{first}" and d, timeout=10,
                           message=lambda: f"the waiting task's details: {details(tab)}")
        assert shown["Concurrency group"] == "deploy-api"
        assert tab.page.get_attribute("#task-details dd a", "href") == f"#/tasks/{first}"
        assert dev.admin.cancel(first).status_code == 202
        # The first one ends; the second takes the group, and its details follow.
        tab.page.wait_for_selector("#task-details .badge-running")
        tab.page.wait_for_function("() => ![...document.querySelectorAll('#task-details dt')]"
                                   ".some(dt => dt.textContent === 'Waiting for')")
        assert details(tab)["Concurrency group"] == "deploy-api"
        tab.assert_clean(ADMIN)
