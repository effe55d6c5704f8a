// The studio's form editor: a JSON Schema and its UI schema as text, previewed by the server's
// own renderer (the fields staff will see), saved into the model's draft.
const root = document.getElementById("form-editor");
const labels = JSON.parse(root.dataset.labels || "{}");
const api = root.dataset.api;
const $ = (id) => document.getElementById(id);
let version = null;
let timer = null;

function say(message, kind) {
  $("form-status").textContent = message;
  $("form-status").dataset.kind = kind || "info";
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

function parsed(id) {
  const text = $(id).value.trim();
  if (!text) return {};
  return JSON.parse(text);
}

async function preview() {
  let schema, ui;
  try { schema = parsed("schema"); ui = parsed("ui-schema"); } catch (e) {
    say(labels.bad_json + " " + e.message, "error");
    return;
  }
  const { ok, data } = await call("POST", api + "/forms/preview", { schema, ui });
  if (!ok) { say((data && data.message) || labels.failed, "error"); return; }
  // The server renders the fields with its own (escaping) templates: the same HTML staff get.
  const fragment = new DOMParser().parseFromString(data.html, "text/html").body;
  $("preview").replaceChildren(...fragment.childNodes);
  say("", "info");
}

async function load() {
  const { ok, data } = await call("GET", api);
  if (!ok) { say((data && data.message) || labels.failed, "error"); return; }
  version = data.draft.version;
  $("schema").value = data.draft.forms[root.dataset.form] || '{\n  "type": "object",\n  "properties": {}\n}';
  $("ui-schema").value = data.draft.forms[root.dataset.uiForm] || "";
  preview();
  root.dataset.ready = "true";
}

async function save() {
  try { parsed("schema"); parsed("ui-schema"); } catch (e) { say(labels.bad_json + " " + e.message, "error"); return; }
  const current = await call("GET", api);
  const forms = Object.assign({}, current.data.draft.forms, { [root.dataset.form]: $("schema").value });
  if ($("ui-schema").value.trim()) forms[root.dataset.uiForm] = $("ui-schema").value;
  else delete forms[root.dataset.uiForm];
  const { ok, status, data } = await call("PUT", api + "/draft", { version, forms });
  if (ok) { version = data.version; say(labels.saved.replace("%s", data.version), "ok"); }
  else say((data && data.message) || labels.failed, status === 409 ? "conflict" : "error");
}

["schema", "ui-schema"].forEach((id) => $(id).addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(preview, 400);
}));
$("form-save").addEventListener("click", save);
load();
