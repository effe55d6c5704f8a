// The studio's decision table editor: dmn-js beside the BPMN modeler. It edits one DMN file of
// the model's draft (the quarterly assessment's grade table, the permission review's reviewer
// table, a designer's own) and saves it into the draft; the server refuses a file it cannot read,
// naming the file and the element.
import DmnModeler from "dmn-js/lib/Modeler";
import "dmn-js/dist/assets/diagram-js.css";
import "dmn-js/dist/assets/dmn-js-shared.css";
import "dmn-js/dist/assets/dmn-js-drd.css";
import "dmn-js/dist/assets/dmn-js-decision-table.css";
import "dmn-js/dist/assets/dmn-js-decision-table-controls.css";
import "dmn-js/dist/assets/dmn-js-literal-expression.css";
import "dmn-js/dist/assets/dmn-font/css/dmn.css";
import "./modeler.css";

const root = document.getElementById("dmn-editor");
const labels = JSON.parse(root.dataset.labels || "{}");
const api = root.dataset.api;
const file = root.dataset.file;
const $ = (id) => document.getElementById(id);
let version = null;
let dirty = false;

// dmn-js asks the `translate` service for its words, as bpmn-js does: the page's dictionary.
const dictionary = JSON.parse(($("modeler-i18n") || {}).textContent || "{}");
function translate(template, replacements) {
  const text = Object.prototype.hasOwnProperty.call(dictionary, template) ? dictionary[template] : template;
  return text.replace(/{([^}]+)}/g, (match, key) => (replacements && key in replacements ? replacements[key] : match));
}

// Each view gets the module itself: dmn-js replaces `common.additionalModules` with a view's own.
const translated = { additionalModules: [{ translate: ["value", translate] }] };
const modeler = new DmnModeler({
  container: $("dmn-canvas"),
  drd: translated, decisionTable: translated, literalExpression: translated, boxedExpression: translated,
});
window.inklessDmnModeler = modeler; // for tests and the browser console

function say(message, kind) {
  $("dmn-status").textContent = message;
  $("dmn-status").dataset.kind = kind || "info";
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

// A new file starts as a decision table with one input and one output: the usual first shape.
function blankTable() {
  const esc = (text) => String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const id = file.replace(/\.dmn$/i, "").replace(/[^A-Za-z0-9_]/g, "_").replace(/^(?![A-Za-z_])/, "d_");
  return `<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="definitions_${id}" name="${id}" namespace="http://inkless/${id}">
  <decision id="${id}" name="${id}">
    <decisionTable id="table_${id}" hitPolicy="UNIQUE">
      <input id="input_1" label="${esc(labels.input)}"><inputExpression id="input_1_expression" typeRef="string"><text></text></inputExpression></input>
      <output id="output_1" label="${esc(labels.output)}" name="result" typeRef="string" />
    </decisionTable>
  </decision>
</definitions>`;
}

// Open the first decision table, not the requirements diagram: a table is what designers change.
function openTable() {
  const view = modeler.getViews().find((v) => v.type === "decisionTable") || modeler.getViews()[0];
  if (view) return modeler.open(view);
  return null;
}

async function load() {
  const { ok, data } = await call("GET", api);
  if (!ok) { say((data && data.message) || labels.failed, "error"); return; }
  version = data.draft.version;
  const xml = (data.draft.dmn || {})[file];
  try {
    await modeler.importXML(xml || blankTable());
    await openTable();
  } catch (e) {
    say(labels.import_failed + " " + e.message, "error");
    return;
  }
  dirty = !xml;
  if (!xml) say(labels.new_table, "info");
  modeler.on("views.changed", watchActive);
  watchActive();
  root.dataset.ready = "true";
}

// Each view has its own command stack; an edit in whichever is open makes the file dirty.
function watchActive() {
  const viewer = modeler.getActiveViewer();
  if (!viewer || viewer.inklessWatched) return;
  viewer.inklessWatched = true;
  viewer.on("elements.changed", () => { dirty = true; });
}

async function save() {
  const { xml } = await modeler.saveXML({ format: true });
  dirty = false;
  const current = await call("GET", api);
  if (!current.ok) { dirty = true; say((current.data && current.data.message) || labels.failed, "error"); return false; }
  const dmn = Object.assign({}, current.data.draft.dmn, { [file]: xml });
  const { ok, status, data } = await call("PUT", api + "/draft", { version, dmn });
  if (ok) {
    version = data.version;
    say(labels.saved.replace("%s", data.version), "ok");
    $("dmn-problems").replaceChildren();
    return true;
  }
  dirty = true;
  say((data && data.message) || labels.failed, status === 409 ? "conflict" : "error");
  const details = (data && data.details) || [];
  $("dmn-problems").replaceChildren(...details.map((d) => Object.assign(document.createElement("li"), {
    className: "problem problem-error",
    textContent: [d.file, d.element_id || d.element, d.message].filter(Boolean).join(": "),
  })));
  return false;
}

async function download() {
  const { xml } = await modeler.saveXML({ format: true });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([xml], { type: "application/xml" }));
  link.download = file;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

$("dmn-save").addEventListener("click", save);
$("dmn-download").addEventListener("click", download);
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
    event.preventDefault();
    save();
  }
});
if (root.dataset.editable === "true") {
  window.addEventListener("beforeunload", (event) => {
    if (!dirty) return;
    event.preventDefault();
    event.returnValue = "";
  });
}
load();
