// Read-only BPMN diagrams on server-rendered pages. A page marks a container with
//   data-bpmn-viewer="<url of the BPMN XML>"
// and optionally
//   data-current="id1 id2"       elements where the instance waits now
//   data-completed="id1 id2"     elements already passed
//   data-incidents="id1"         elements with an incident
//   data-overlays="<url>"        JSON {element_id: {count, overdue, incidents, href}} drawn as badges
//   data-refresh="5"             re-read the overlays every N seconds (live views)
// The page stays useful without it: every fact shown here is also listed in the page's text.
import NavigatedViewer from "bpmn-js/lib/NavigatedViewer";
import "bpmn-js/dist/assets/diagram-js.css";
import "bpmn-js/dist/assets/bpmn-js.css";
import "bpmn-js/dist/assets/bpmn-font/css/bpmn.css";
import "./viewer.css";

function ids(value) {
  return (value || "").split(/\s+/).filter(Boolean);
}

function markAll(canvas, registry, list, marker) {
  list.forEach((id) => {
    if (registry.get(id)) canvas.addMarker(id, marker);
  });
}

function badge(text, className, href, label) {
  const el = document.createElement(href ? "a" : "span");
  el.className = "bpmn-badge " + className;
  el.textContent = text;
  if (href) el.href = href;
  if (label) {
    el.title = label;
    el.setAttribute("aria-label", label);
  }
  return el;
}

async function drawOverlays(viewer, container) {
  const url = container.dataset.overlays;
  if (!url) return;
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const data = await response.json();
  const overlays = viewer.get("overlays");
  const registry = viewer.get("elementRegistry");
  overlays.remove({ type: "inkless" });
  const labels = JSON.parse(container.dataset.labels || "{}");
  Object.entries(data.elements || data).forEach(([id, info]) => {
    if (!registry.get(id)) return;
    const box = document.createElement("div");
    box.className = "bpmn-badges";
    if (info.count) box.appendChild(badge(String(info.count), "is-count", info.href, (labels.count || "%s").replace("%s", info.count)));
    if (info.overdue) box.appendChild(badge(String(info.overdue), "is-overdue", info.href, (labels.overdue || "%s").replace("%s", info.overdue)));
    if (info.incidents) box.appendChild(badge(String(info.incidents), "is-incident", info.href, (labels.incidents || "%s").replace("%s", info.incidents)));
    if (info.heat !== undefined) {
      const heat = badge(info.label || String(info.heat), "is-heat", info.href, info.title);
      heat.style.setProperty("--heat", String(Math.max(0, Math.min(1, info.heat))));
      box.appendChild(heat);
    }
    if (box.childNodes.length) overlays.add(id, "inkless", { position: { top: -12, right: 10 }, html: box });
  });
  container.dispatchEvent(new CustomEvent("inkless:overlays", { detail: data }));
}

async function show(container) {
  const viewer = new NavigatedViewer({ container });
  container.inklessViewer = viewer;
  const response = await fetch(container.dataset.bpmnViewer, { credentials: "same-origin" });
  if (!response.ok) {
    container.dataset.state = "failed";
    return;
  }
  await viewer.importXML(await response.text());
  const canvas = viewer.get("canvas");
  const registry = viewer.get("elementRegistry");
  canvas.zoom("fit-viewport", "auto");
  markAll(canvas, registry, ids(container.dataset.completed), "is-completed");
  markAll(canvas, registry, ids(container.dataset.current), "is-current");
  markAll(canvas, registry, ids(container.dataset.incidents), "is-incident");
  container.addEventListener("click", (event) => {
    const gfx = event.target.closest("[data-element-id]");
    if (gfx) container.dispatchEvent(new CustomEvent("inkless:select", { detail: gfx.dataset.elementId, bubbles: true }));
  });
  await drawOverlays(viewer, container);
  const every = parseInt(container.dataset.refresh || "0", 10);
  if (every > 0) setInterval(() => drawOverlays(viewer, container).catch(() => {}), every * 1000);
  container.dataset.state = "ready";
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-bpmn-viewer]").forEach((container) => {
    show(container).catch((error) => {
      container.dataset.state = "failed";
      console.warn("diagram not shown:", error);
    });
  });
});
