// The "New task" form: title, notes, and a recipe with its parameters when the server has
// recipes (GET /ops/recipes; a 404 there means it has none).

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
      params: readParams(recipe.params),
    }));
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
        required: info.required !== false && !("default" in info && info.default !== null),
      };
    });
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
    this.recipes = [];

    this.recipe.addEventListener("change", () => this.showParams());
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
    this.recipe.replaceChildren(el("option", { value: "", text: "None" }),
      ...this.recipes.map((recipe) => el("option", { value: recipe.name, text: recipe.name })));
    this.recipeFields.hidden = this.recipes.length === 0;
    this.showParams();
  }

  selected() {
    return this.recipes.find((recipe) => recipe.name === this.recipe.value) ?? null;
  }

  showParams() {
    const recipe = this.selected();
    this.description.textContent = recipe?.description ?? "";
    this.params.replaceChildren(...(recipe?.params ?? []).flatMap((param, index) => {
      const id = `recipe-param-${index}`;
      const hint = [param.description, param.pattern && `Must match ${param.pattern}`]
        .filter(Boolean).join(". ");
      return [
        el("label", { for: id, text: param.name }),
        el("input", { id, "data-param": param.name, value: param.default, spellcheck: "false",
          "aria-describedby": hint ? `${id}-hint` : null }),
        hint ? el("p", { id: `${id}-hint`, class: "hint", text: hint }) : null,
      ].filter(Boolean);
    }));
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
        throw new Error(value ? `${param.name} must match ${param.pattern}.`
          : `${param.name} is required.`);
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
  }
}
