// The dashboard: sign-in, and the wiring of the list, the form and the task view.
// The open task lives in the URL hash (#/tasks/12) so that a reload reopens it; a link to one
// line of its output adds the line (#/tasks/12/line/340).

import { Api } from "./api.js";
import { CreateForm } from "./create-form.js";
import { showMessage } from "./format.js";
import { TaskList } from "./task-list.js";
import { TaskView } from "./task-view.js";

const TOKEN_KEY = "ops.adminToken"; // sessionStorage: this tab only, gone when it closes
const TASK_ROUTE = /^#\/tasks\/(\d+)(?:\/line\/(\d+))?$/;

const $ = (id) => document.getElementById(id);
const api = new Api(document.body.dataset.apiRoot || "/ops");
const dashboard = $("dashboard");
const list = new TaskList(api, dashboard);
const view = new TaskView(api, dashboard, {
  onTaskChanged: () => list.load(),
  onTaskShown: (task) => list.update(task),
});
const form = new CreateForm(api, dashboard, {
  onCreated: (task) => {
    list.firstPage();
    location.hash = `#/tasks/${task.id}`;
  },
});

const signInForm = $("sign-in-form");
const tokenInput = $("admin-token");
const signInButton = $("sign-in-button");
const signInError = $("sign-in-error");

function route() {
  if (!api.token) return;
  const match = TASK_ROUTE.exec(location.hash);
  const taskId = match ? Number(match[1]) : null;
  list.select(taskId);
  if (taskId) view.open(taskId, match[2] ? Number(match[2]) : null);
  else view.close();
}

function enter(token) {
  api.token = token;
  $("sign-in").hidden = true;
  $("session").hidden = false;
  dashboard.hidden = false;
  list.start();
  form.loadRecipes();
  route();
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  api.token = null;
  view.close();
  list.stop();
  form.reset();
  dashboard.hidden = true;
  $("session").hidden = true;
  $("sign-in").hidden = false;
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  showMessage(signInError, message);
  tokenInput.focus();
}

api.onUnauthorized = () => {
  signOut("The server no longer accepts this admin token. Sign in again.");
};

signInForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (!token) {
    showMessage(signInError, "Paste the admin token first.");
    return;
  }
  showMessage(signInError, "");
  signInButton.disabled = true;
  const check = new Api(api.root);
  check.token = token;
  try {
    await check.get("/tasks?limit=1"); // any admin-gated call proves the token
  } catch (error) {
    showMessage(signInError, error.status === 401
      ? "Wrong admin token: the server refused it."
      : `Could not sign in: ${error.message}`);
    tokenInput.select();
    return;
  } finally {
    signInButton.disabled = false;
  }
  tokenInput.value = "";
  sessionStorage.setItem(TOKEN_KEY, token);
  enter(token);
  $("task-title").focus(); // the sign-in form is gone: start where the work starts
});

$("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) enter(saved);
