// The "New task" form: title, notes, and what will run the task, in words: the dev runner in
// dev mode, the model, or a recipe with its parameters (GET /ops/recipes says which the server
// has; a 404 or an older answer without `default_runner` leaves the choice to the recipes).

import { el, showMessage } from "./format.js";

/** The recipes of a GET /ops/recipes answer, as [{name, description, params: [...]}]. */
export function readRecipes(answer) {
  const list = Array.isArray(answer) ? answer
    : Array.isArray(answer?.recipes) ? answer.recipes : [];
  return list
    .filter((recipe) => recipe && typeof recipe.name === "string" && recipe.name)
    .map((recipe) => ({
      name: recipe.name,
      description: typeof recipe.description === "string" ? recipe.description : "",
      argv: Array.isArray(recipe.argv) ? recipe.argv.filter((arg) => typeof arg === "string")
        : [],
      params: readParams(recipe.params),
    }));
}

/** What runs a task without a recipe: "dev", "llm", "none" (refused), or null (not said). */
export function readDefaultRunner(answer) {
  if (!answer || typeof answer !== "object" || !("default_runner" in answer)) return null;
  if (answer.dev_mode === true) return "dev";
  return ["dev", "llm"].includes(answer.default_runner) ? answer.default_runner : "none";
}

// Parameters come as {name: {pattern, description, default, required}}, {name: "pattern"},
// or a list of names or of {name, ...}.
function readParams(params) {
  const entries = Array.isArray(params)
    ? params.map((p) => (typeof p === "string" ? [p, {}] : [p?.name, p]))
    : Object.entries(params && typeof params === "object" ? params : {});
  return entries
    .filter(([name]) => typeof name === "string" && name)
    .map(([name, spec]) => {
      const info = typeof spec === "string" ? { pattern: spec }
        : spec && typeof spec === "object" ? spec : {};
      return {
        name,
        pattern: typeof info.pattern === "string" ? info.pattern : null,
        description: typeof info.description === "string" ? info.description : "",
        default: typeof info.default === "string" ? info.default : "",
        example: typeof info.example === "string" ? info.example : "",
        required: info.required !== false && !("default" in info && info.default !== null),
      };
    });
}

// A pattern that only lists words, such as "api|web|worker" or "(?:dev|prod)".
const WORD_CHOICE = /^(?:\((?:\?:)?)?([A-Za-z0-9_-]+(?:\|[A-Za-z0-9_-]+)+)\)?$/;

/** A parameter's rule in words: its description, its choices, an example; "" if none. */
export function paramHint(param) {
  const parts = [];
  if (param.description) parts.push(sentence(param.description));
  const choice = param.pattern && WORD_CHOICE.exec(param.pattern);
  if (choice) {
    const words = choice[1].split("|");
    parts.push(`One of ${words.slice(0, -1).join(", ")} or ${words.at(-1)}.`);
  } else if (param.example || param.default) {
    parts.push(`For example: ${param.example || param.default}`);
  }
  return parts.join(" ");
}

function sentence(text) {
  const trimmed = text.trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** The command a recipe runs, its parameters written <name>: "deploy.py <service> <ref>". */
function commandText(recipe) {
  return recipe.argv.map((arg) => arg.replace(/^\{([A-Za-z_][A-Za-z0-9_]*)\}$/, "<$1>"))
    .join(" ");
}

/** Whether `value` wholly matches `pattern`; true when the pattern is not a JS regex. */
function matches(pattern, value) {
  let regex;
  try {
    regex = new RegExp(`^(?:${pattern})$`, "u");
  } catch {
    return true; // the server checks it anyway
  }
  return regex.test(value);
}

const NOTES = {
  dev: "Dev mode: this task runs on the dev runner, a stand-in that reports a few ticks, then "
    + "finishes.",
  devRecipes: (count) => `The server's ${count === 1 ? "recipe runs" : `${count} recipes run`} `
    + "only outside dev mode.",
  llm: "The model answers this task: the title and notes are its prompt, and its answer "
    + "appears as it is written.",
  recipesOnly: "This server runs recipes only.",
  none: "This server has no runner, so it cannot run tasks. Its administrator sets "
    + "OPS_RECIPES (command recipes) or OPS_LLM_BASE_URL and OPS_LLM_MODEL (a model).",
};

export class CreateForm {
  /** @param {{onCreated: Function}} hooks onCreated(task) after the server took the task */
  constructor(api, root, { onCreated }) {
    this.api = api;
    this.onCreated = onCreated;
    this.form = root.querySelector("#create-form");
    this.title = root.querySelector("#task-title");
    this.notes = root.querySelector("#task-notes");
    this.recipeFields = root.querySelector("#recipe-fields");
    this.recipe = root.querySelector("#task-recipe");
    this.description = root.querySelector("#recipe-description");
    this.params = root.querySelector("#recipe-params");
    this.button = root.querySelector("#create-button");
    this.error = root.querySelector("#create-error");
    this.note = root.querySelector("#runner-note");
    this.recipes = [];
    this.runner = null;

    this.recipe.addEventListener("change", () => this.showChoice());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  async loadRecipes() {
    let answer = null;
    try {
      answer = await this.api.get("/recipes");
    } catch {
      answer = null; // 404: this server has no recipes; anything else: create plain tasks
    }
    this.recipes = readRecipes(answer);
    this.runner = readDefaultRunner(answer);
    const noRecipe = this.runner === "llm" ? "The model (no recipe)" : "No recipe";
    const options = this.recipes.map((recipe) => el("option", {
      value: recipe.name, text: `Recipe: ${recipe.name}`,
    }));
    // A server that runs recipes only refuses a task without one: no such choice.
    if (this.runner !== "none") options.unshift(el("option", { value: "", text: noRecipe }));
    this.recipe.replaceChildren(...options);
    this.recipeFields.hidden = this.recipes.length === 0 || this.runner === "dev";
    this.showChoice();
  }

  selected() {
    if (this.runner === "dev") return null; // dev mode runs no recipe
    return this.recipes.find((recipe) => recipe.name === this.recipe.value) ?? null;
  }

  /** Say what will run the task, and ask for the chosen recipe's parameters. */
  showChoice() {
    const recipe = this.selected();
    this.showNote(this.runnerNote(recipe));
    this.description.textContent = recipe?.description ? sentence(recipe.description) : "";
    this.params.replaceChildren(...(recipe?.params ?? []).flatMap((param, index) => {
      const id = `recipe-param-${index}`;
      const hint = paramHint(param);
      return [
        el("label", { for: id, text: param.name }),
        el("input", { id, "data-param": param.name, value: param.default, spellcheck: "false",
          "aria-describedby": hint ? `${id}-hint` : null }),
        hint ? el("p", { id: `${id}-hint`, class: "hint", text: hint }) : null,
      ].filter(Boolean);
    }));
  }

  /** What will run the task, in words, and whether nothing can. */
  runnerNote(recipe) {
    const count = this.recipes.length;
    if (this.runner === "dev") {
      return count ? `${NOTES.dev} ${NOTES.devRecipes(count)}` : NOTES.dev;
    }
    if (recipe) {
      const only = this.runner === "none" ? `${NOTES.recipesOnly} ` : "";
      return `${only}The server runs the command ${commandText(recipe)} (recipe ${recipe.name}).`;
    }
    if (this.runner === "llm") return NOTES.llm;
    if (this.runner === "none") return { error: NOTES.none };
    return "";
  }

  showNote(note) {
    const error = typeof note === "object";
    showMessage(this.note, error ? note.error : note);
    this.note.classList.toggle("error", error);
    this.note.classList.toggle("hint", !error);
    this.button.disabled = error;
  }

  /** The request body, or throws an Error naming the field to fix (and focuses it). */
  payload() {
    const title = this.title.value.trim();
    if (!title) {
      this.title.focus();
      throw new Error("A title is required.");
    }
    const body = { title };
    const notes = this.notes.value.trim();
    if (notes) body.body = notes;
    const recipe = this.selected();
    if (!recipe) return body;
    const params = {};
    for (const param of recipe.params) {
      const input = this.params.querySelector(`[data-param="${CSS.escape(param.name)}"]`);
      const value = input.value.trim();
      if (!value && !param.required) continue;
      if (!value || (param.pattern && !matches(param.pattern, value))) {
        input.focus();
        if (!value) throw new Error(`${param.name} is required.`);
        const hint = paramHint(param);
        throw new Error(hint ? `${param.name} does not fit. ${hint}`
          : `${param.name} must match ${param.pattern}.`);
      }
      params[param.name] = value;
    }
    return { ...body, recipe: recipe.name, params };
  }

  async submit() {
    showMessage(this.error, "");
    let body;
    try {
      body = this.payload();
    } catch (error) {
      showMessage(this.error, error.message);
      return;
    }
    this.button.disabled = true;
    try {
      const task = await this.api.post("/tasks", body);
      this.title.value = "";
      this.notes.value = "";
      this.onCreated(task);
    } catch (error) {
      showMessage(this.error, `Could not create the task: ${error.message}`);
    } finally {
      this.button.disabled = false;
    }
  }

  reset() {
    this.form.reset();
    showMessage(this.error, "");
    this.showNote("");
  }
}
