// The dashboard: who is signed in, and the wiring of the list, the form, the task view, the
// workers view and (for admins) the audit view. The open task lives in the URL hash
// (#/tasks/12) so that a reload reopens it; a link to one line of its output adds the line
// (#/tasks/12/line/340); the workers view is #/workers, the audit view #/audit.
//
// Who the page acts for comes from GET /ops/whoami: with the token this tab kept, or, when
// the server has a proxy sign-in (the page's data-proxy-sign-in), with none: a user the
// authenticating proxy signed in needs none. Only when that is refused does the page ask for
// a token. The answer's role decides what is shown: a control
// the role may not use is not on the page at all.

import { Api } from "./api.js";
import { AuditView } from "./audit-view.js";
import { CreateForm } from "./create-form.js";
import { showMessage } from "./format.js";
import { TaskList } from "./task-list.js";
import { TaskView } from "./task-view.js";
import { WorkersView } from "./workers-view.js";

const TOKEN_KEY = "ops.adminToken"; // sessionStorage: this tab only, gone when it closes
const TASK_ROUTE = /^#\/tasks\/(\d+)(?:\/line\/(\d+))?$/;
const VIEW_ROUTES = { audit: "#/audit", workers: "#/workers" }; // else: the tasks

const $ = (id) => document.getElementById(id);
const api = new Api(document.body.dataset.apiRoot || "/ops");
const dashboard = $("dashboard");
const list = new TaskList(api, dashboard);
const view = new TaskView(api, dashboard, {
  onTaskChanged: () => list.load(),
  onTaskShown: (task) => list.update(task),
  onRelaunched: (task) => {
    list.firstPage();
    location.hash = `#/tasks/${task.id}`;
  },
});
const form = new CreateForm(api, dashboard, {
  onCreated: (task) => {
    list.firstPage();
    location.hash = `#/tasks/${task.id}`;
  },
});
const audit = new AuditView(api, document);
const workers = new WorkersView(api, document);

const signInForm = $("sign-in-form");
const tokenInput = $("admin-token");
const signInButton = $("sign-in-button");
const signInError = $("sign-in-error");

let session = null; // GET /ops/whoami's answer while signed in

/** Which view the URL asks for: "tasks", "workers", or "audit" (admins only). */
function currentView() {
  if (location.hash === VIEW_ROUTES.workers) return "workers";
  if (location.hash === VIEW_ROUTES.audit && session.may?.audit === true) return "audit";
  return "tasks";
}

function route() {
  if (!session) return;
  const current = currentView();
  for (const name of ["tasks", "workers", "audit"]) {
    if (name === current) $(`view-${name}`).setAttribute("aria-current", "page");
    else $(`view-${name}`).removeAttribute("aria-current");
  }
  dashboard.hidden = current !== "tasks";
  if (current === "workers") workers.show();
  else workers.hide();
  if (current === "audit") audit.show();
  else audit.hide();
  if (current !== "tasks") {
    view.close();
    list.select(null);
    return;
  }
  const match = TASK_ROUTE.exec(location.hash);
  const taskId = match ? Number(match[1]) : null;
  list.select(taskId);
  if (taskId) view.open(taskId, match[2] ? Number(match[2]) : null);
  else view.close();
}

/** Show what `who` (a whoami answer) may see; `token` is the pasted token, or null. */
function enter(who, token) {
  const may = who.may ?? {};
  session = who;
  api.token = token;
  api.signedIn = true;
  $("checking").hidden = true;
  $("sign-in").hidden = true;
  $("session-user").textContent = `${who.name} · ${who.role}`;
  $("sign-out").hidden = !token; // a proxy's sign-in is the proxy's to end
  $("session").hidden = false;
  $("views").hidden = false;
  $("view-audit").hidden = may.audit !== true;
  $("create").hidden = may.create !== true;
  view.mayCancel = may.cancel === true;
  view.mayRelaunch = may.create === true;
  list.setOwner(who.name);
  dashboard.hidden = false;
  list.start();
  if (may.create === true) form.loadRecipes();
  document.body.dataset.session = "in";
  route();
}

/** The sign-in form, saying `message` when there is one. */
function showSignIn(message = "") {
  session = null;
  api.token = null;
  api.signedIn = false;
  view.close();
  list.stop();
  form.reset();
  audit.reset();
  workers.reset();
  dashboard.hidden = true;
  $("checking").hidden = true;
  $("session").hidden = true;
  $("views").hidden = true;
  $("sign-in").hidden = false;
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  showMessage(signInError, message);
  document.body.dataset.session = "out";
  tokenInput.focus();
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn(message);
}

/** GET /ops/whoami with `token` (null: none, as a proxy's user). */
function whoami(token) {
  const check = new Api(api.root);
  check.token = token;
  return check.get("/whoami");
}

api.onUnauthorized = () => {
  if (api.token) signOut("The server no longer accepts this token. Sign in again.");
  else showSignIn("The proxy no longer signs you in. Reload the page, or paste a token.");
};

signInForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (!token) {
    showMessage(signInError, "Paste the token first.");
    return;
  }
  showMessage(signInError, "");
  signInButton.disabled = true;
  let who;
  try {
    who = await whoami(token); // proves the token, and says whose it is
  } catch (error) {
    showMessage(signInError, error.status === 401
      ? "Wrong token: the server refused it."
      : `Could not sign in: ${error.message}`);
    tokenInput.select();
    return;
  } finally {
    signInButton.disabled = false;
  }
  tokenInput.value = "";
  sessionStorage.setItem(TOKEN_KEY, token);
  enter(who, token);
  // The sign-in form is gone: start where the work starts.
  $(who.may?.create === true ? "task-title" : "status-filter").focus();
});

$("sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);

async function start() {
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (!saved && document.body.dataset.proxySignIn !== "on") {
    showSignIn(); // no proxy signs anyone in here: a token it is
    return;
  }
  try {
    enter(await whoami(saved), saved);
  } catch (error) {
    if (error.status === 401 && saved) {
      signOut("The server no longer accepts this token. Sign in again.");
    } else if (error.status === 401) {
      showSignIn(); // no proxy sign-in: a token it is
    } else {
      showSignIn(error.status === 403 ? error.message
        : `Could not find out who you are: ${error.message}`);
    }
  }
}

start();
