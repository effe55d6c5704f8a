// The studio's modeler page: bpmn-js Modeler with the properties panel (plus Inkless's own
// properties), bpmnlint in the browser, and the studio API for saving, server validation, try-it
// and deploying. The page container #studio carries the API URL, the CSRF token and the labels.
import BpmnModeler from "bpmn-js/lib/Modeler";
import { BpmnPropertiesPanelModule, BpmnPropertiesProviderModule } from "bpmn-js-properties-panel";
import lintModule from "bpmn-js-bpmnlint";
import "bpmn-js/dist/assets/diagram-js.css";
import "bpmn-js/dist/assets/bpmn-js.css";
import "bpmn-js/dist/assets/bpmn-font/css/bpmn.css";
import "@bpmn-io/properties-panel/dist/assets/properties-panel.css";
import "bpmn-js-bpmnlint/dist/assets/css/bpmn-js-bpmnlint.css";
import "./modeler.css";
import spiffworkflow from "./studio/spiffworkflow.json";
import lintConfig from "./studio/bpmnlint-config.js";
import InklessPropertiesProvider, { choices } from "./studio/inkless-properties.js";

const root = document.getElementById("studio");
const labels = JSON.parse(root.dataset.labels || "{}");
const api = root.dataset.api;
const state = { version: Number(root.dataset.version), scenarios: {} };
const $ = (id) => document.getElementById(id);

// bpmn-js, diagram-js, the properties panel and bpmnlint ask the `translate` service for every
// word they show: look the English template up in the page's dictionary, then fill {placeholders}.
const dictionary = JSON.parse(($("modeler-i18n") || {}).textContent || "{}");
function translate(template, replacements) {
  const text = Object.prototype.hasOwnProperty.call(dictionary, template) ? dictionary[template] : template;
  return text.replace(/{([^}]+)}/g, (match, key) => (replacements && key in replacements ? replacements[key] : match));
}

const modeler = new BpmnModeler({
  container: $("canvas"),
  propertiesPanel: { parent: $("properties") },
  linting: { bpmnlint: lintConfig, active: true },
  additionalModules: [{ translate: ["value", translate] }, BpmnPropertiesPanelModule, BpmnPropertiesProviderModule, lintModule,
    { __init__: ["inklessPropertiesProvider"], inklessPropertiesProvider: ["type", InklessPropertiesProvider] }],
  moddleExtensions: { spiffworkflow },
});
window.inklessModeler = modeler; // for tests and the browser console

function say(message, kind) {
  const status = $("status");
  status.textContent = message;
  status.dataset.kind = kind || "info";
}

async function call(method, url, body) {
  const response = await fetch(url, {
    method, credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": root.dataset.csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  return { ok: response.ok, status: response.status, data };
}

async function currentXml() {
  const { xml } = await modeler.saveXML({ format: true });
  return xml;
}

function fit() {
  const canvas = modeler.get("canvas");
  canvas.zoom("fit-viewport", "auto");
  canvas.scroll({ dx: 70, dy: 0 }); // clear of the palette on the left
}

async function load() {
  const { ok, data } = await call("GET", api);
  if (!ok) { say((data && data.message) || labels.load_failed, "error"); return; }
  state.version = data.draft.version;
  state.scenarios = data.draft.scenarios || {};
  const performers = await call("GET", api + "/performers");
  if (performers.ok) choices.performers = performers.data.items;
  await modeler.importXML(data.draft.xml);
  dirty = false;
  fit();
  fillScenarios();
  root.dataset.ready = "true";
}

async function save() {
  // Cleared before the request, so an edit made while it is under way makes the draft dirty again.
  dirty = false;
  const { ok, status, data } = await call("PUT", api + "/draft", { version: state.version, xml: await currentXml() });
  if (ok) {
    state.version = data.version;
    root.dataset.version = String(data.version);
    say(labels.saved.replace("%s", data.version), "ok");
  } else {
    dirty = true;
    say((data && data.message) || labels.failed, status === 409 ? "conflict" : "error");
  }
  return ok;
}

// Problems: listed as buttons that select the element, and marked on the canvas.
let marked = [];
function showProblems(problems) {
  const canvas = modeler.get("canvas");
  const registry = modeler.get("elementRegistry");
  marked.forEach((id) => registry.get(id) && canvas.removeMarker(id, "has-problem"));
  marked = [];
  const list = $("problems");
  list.replaceChildren();
  problems.forEach((p) => {
    const item = document.createElement("li");
    item.className = "problem problem-" + (p.severity || "error");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = (p.element_id ? p.element_id + ": " : "") + p.message;
    if (p.element_id && registry.get(p.element_id)) {
      canvas.addMarker(p.element_id, "has-problem");
      marked.push(p.element_id);
      button.dataset.element = p.element_id;
    }
    item.appendChild(button);
    list.appendChild(item);
  });
  $("problems-summary").textContent = problems.length ? labels.problems.replace("%s", problems.length) : labels.no_problems;
}

$("problems").addEventListener("click", (event) => {
  const button = event.target.closest("[data-element]");
  if (!button) return;
  const element = modeler.get("elementRegistry").get(button.dataset.element);
  modeler.get("selection").select(element);
  modeler.get("canvas").scrollToElement(element);
});

async function validate() {
  const { ok, data } = await call("POST", api + "/validate", { xml: await currentXml() });
  if (!ok) { say((data && data.message) || labels.failed, "error"); return false; }
  showProblems(data.problems);
  say(data.valid ? labels.valid : labels.problems.replace("%s", data.problems.length), data.valid ? "ok" : "error");
  return data.valid;
}

async function deploy() {
  if (!(await save()) || !(await validate())) return;
  const { ok, data } = await call("POST", api + "/deploy", { version: state.version });
  if (ok) say(labels.deployed.replace("%s", data.version), "ok");
  else {
    say((data && data.message) || labels.failed, "error");
    if (data && data.details) showProblems(data.details.map((d) => ({ element_id: d.element_id || d.element, message: d.message })));
  }
}

// Try it: the scenario JSON in the text area is run in the server's sandbox; "complete" appends a
// step for a waiting task and runs again (the server replays; nothing is stored).
let tried = [];
function scenarioFromText() {
  const text = $("scenario").value.trim() || "{}";
  try { return JSON.parse(text); } catch (e) { say(labels.bad_json + " " + e.message, "error"); return null; }
}

function showRun(result) {
  const canvas = modeler.get("canvas");
  const registry = modeler.get("elementRegistry");
  tried.forEach(([id, m]) => registry.get(id) && canvas.removeMarker(id, m));
  tried = [];
  result.path.forEach((id) => { if (registry.get(id)) { canvas.addMarker(id, "is-completed"); tried.push([id, "is-completed"]); } });
  result.waiting.forEach((id) => { if (registry.get(id)) { canvas.addMarker(id, "is-current"); tried.push([id, "is-current"]); } });
  $("try-outcome").textContent = result.ok ? labels.try_ok : labels.try_failed;
  $("try-outcome").dataset.ok = String(result.ok);
  $("try-path").textContent = result.path.join(" → ");
  const failures = $("try-failures");
  failures.replaceChildren(...result.failures.map((f) => Object.assign(document.createElement("li"), { textContent: f })));
  // Each waiting task asks for its sample data in its own form, drawn by the staff renderer.
  const ready = $("try-ready");
  ready.replaceChildren();
  (result.ready || []).forEach((task) => {
    const item = document.createElement("li");
    const form = document.createElement("form");
    form.className = "try-form";
    form.dataset.step = task.element_id;
    form.noValidate = true; // the server checks it, as it does on a task page
    const heading = document.createElement("h3");
    heading.id = "try-form-" + task.element_id;
    heading.textContent = labels.step_form.replace("%s", task.name);
    form.setAttribute("aria-labelledby", heading.id);
    const fields = document.createElement("div");
    fields.className = "try-fields";
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = labels.complete.replace("%s", task.name);
    form.append(heading, fields, button);
    item.appendChild(form);
    ready.appendChild(item);
    taskForms[task.element_id] = { form: task.form, ui_form: task.ui_form, approval: Boolean(task.approval) };
    renderTaskForm(task.element_id, fields);
  });
  $("try-data").textContent = JSON.stringify(result.data, null, 2);
}

async function tryIt(scenario) {
  if (!scenario) return;
  const { ok, data } = await call("POST", api + "/try", { scenario, xml: await currentXml() });
  if (!ok) { say((data && data.message) || labels.failed, "error"); return; }
  showRun(data);
  say(data.ok ? labels.try_ok : labels.try_failed, data.ok ? "ok" : "error");
}

// What each waiting task's form is (by element id), to draw it and to read what was filled in.
const taskForms = {};

function placeHtml(target, html) {
  // The server renders the fields with its own (escaping) templates: the same HTML staff get.
  const fragment = new DOMParser().parseFromString(html, "text/html").body;
  target.replaceChildren(...fragment.childNodes);
}

async function renderTaskForm(element, target, submitted) {
  const body = Object.assign({}, taskForms[element], submitted ? { submitted } : {});
  if (!body.form) body.schema = { type: "object", properties: {} };
  const { ok, data } = await call("POST", api + "/forms/preview", body);
  if (!ok) { say((data && data.message) || labels.failed, "error"); return null; }
  placeHtml(target, data.html);
  return data;
}

$("try-ready").addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-step]");
  if (!form) return;
  event.preventDefault();
  const scenario = scenarioFromText();
  if (!scenario) return;
  const submitted = [...new FormData(form)].filter(([, value]) => typeof value === "string");
  const read = await renderTaskForm(form.dataset.step, form.querySelector(".try-fields"), submitted);
  if (!read) return;
  if (Object.keys(read.errors || {}).length) {
    say(labels.fix_fields, "error");
    const invalid = form.querySelector("[aria-invalid=true]");
    if (invalid) invalid.focus();
    return;
  }
  scenario.steps = (scenario.steps || []).concat([{ task: form.dataset.step, data: read.data }]);
  delete scenario.expect;
  $("scenario").value = JSON.stringify(scenario, null, 2);
  tryIt(scenario);
});

function fillScenarios() {
  const select = $("scenario-name");
  select.replaceChildren(Object.assign(document.createElement("option"), { value: "", textContent: labels.new_scenario }));
  Object.keys(state.scenarios).sort().forEach((name) => select.appendChild(Object.assign(document.createElement("option"), { value: name, textContent: name })));
}

$("scenario-name").addEventListener("change", () => {
  const chosen = state.scenarios[$("scenario-name").value];
  $("scenario").value = chosen ? JSON.stringify(chosen, null, 2) : "";
});

async function saveScenario() {
  const scenario = scenarioFromText();
  const name = (scenario && scenario.name) || $("scenario-name").value;
  if (!scenario || !name) { say(labels.scenario_needs_name, "error"); return; }
  const scenarios = Object.assign({}, state.scenarios, { [name]: scenario });
  const { ok, data } = await call("PUT", api + "/draft", { version: state.version, scenarios });
  if (!ok) { say((data && data.message) || labels.failed, "error"); return; }
  state.version = data.version;
  state.scenarios = scenarios;
  fillScenarios();
  $("scenario-name").value = name;
  say(labels.saved.replace("%s", data.version), "ok");
}

// Download the diagram as it is on screen; upload one from another modeler.
async function download() {
  const blob = new Blob([await currentXml()], { type: "application/xml" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = root.dataset.key + ".bpmn";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

$("upload").addEventListener("change", async () => {
  const file = $("upload").files[0];
  if (!file) return;
  try {
    const result = await modeler.importXML(await file.text());
    dirty = true; // the uploaded diagram is on screen only, until saved
    fit();
    say(labels.imported + (result.warnings.length ? " (" + result.warnings.length + ")" : ""), "ok");
  } catch (e) {
    say(labels.import_failed + " " + e.message, "error");
  }
  $("upload").value = "";
});

// A zip package (diagram, forms, DMN, scenarios) replaces the draft; the page reloads with it.
if ($("package")) {
  $("package").addEventListener("change", async () => {
    const file = $("package").files[0];
    if (!file) return;
    const body = new FormData();
    body.append("file", file);
    body.append("version", String(state.version));
    const response = await fetch(api + "/package", {
      method: "POST", credentials: "same-origin", body,
      headers: { Accept: "application/json", "X-CSRF-Token": root.dataset.csrf },
    });
    const data = await response.json().catch(() => null);
    if (response.ok) {
      dirty = false; // the package is the draft now: the page reloads with it
      window.location.reload();
    }
    else say((data && data.message) || labels.failed, response.status === 409 ? "conflict" : "error");
    $("package").value = "";
  });
}

const actions = {
  save, validate, deploy, download,
  undo: () => modeler.get("commandStack").undo(),
  redo: () => modeler.get("commandStack").redo(),
  try: () => tryIt(scenarioFromText()),
  "save-scenario": saveScenario,
};
document.querySelectorAll("[data-action]").forEach((button) => {
  button.addEventListener("click", () => actions[button.dataset.action]());
});

// Autosave: every 30 s while there are unsaved edits. It sends the version it loaded like any
// save, so it never overwrites someone else's newer draft (409: the status line says so).
// Importing a diagram clears the command stack, which fires the same event: only an edit counts.
let dirty = false;
modeler.on("commandStack.changed", (event) => { if (event.trigger !== "clear") dirty = true; });
if (root.dataset.editable === "true") {
  setInterval(async () => {
    if (!dirty || root.dataset.ready !== "true") return;
    await save();
  }, 30000);
  // Leaving the page (a link, reload, closing the tab) with edits not yet saved: the browser asks
  // first, in its own words (browsers ignore a page's text here).
  window.addEventListener("beforeunload", (event) => {
    if (!dirty) return;
    event.preventDefault();
    event.returnValue = "";
  });
}

// Ctrl+S saves (the modeler's own bindings give undo/redo, copy/paste, delete, … on the canvas).
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
    event.preventDefault();
    save();
  }
});

load();
