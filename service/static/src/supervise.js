// The supervision overview: selecting a step on the diagram (viewer.js's inkless:select) shows
// only the instances waiting there, re-read from the server so the list is as fresh as the badges;
// each refresh of the badges (inkless:overlays) updates the counts table too, so the text stays as
// live as the picture. Without this file the same lists come from the server (?element=…).
async function reload(list, url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("#waiting-list tbody");
  if (fresh) list.querySelector("tbody").replaceWith(document.adoptNode(fresh));
}

async function selectStep(list, element) {
  const url = new URL(window.location.href);
  if (element) url.searchParams.set("element", element);
  else url.searchParams.delete("element");
  url.hash = "";
  await reload(list, url).catch(() => {});
  window.history.replaceState(null, "", url);
  const rows = list.querySelectorAll("tbody tr[data-element]");
  let shown = 0;
  let name = element;
  rows.forEach((row) => {
    const match = !element || row.dataset.element === element;
    row.hidden = !match;
    if (match) {
      shown += 1;
      name = row.dataset.elementName || name;
    }
  });
  const status = list.querySelector("[data-waiting-status]");
  if (!element) status.textContent = list.dataset.labelAll;
  else if (!shown) status.textContent = list.dataset.labelNone;
  else status.textContent = list.dataset.labelAt.replace("%s", name);
  list.querySelector("[data-show-all]").hidden = !element;
  list.dataset.selected = element || "";
}

function updateCounts(table, elements) {
  table.querySelectorAll("tbody tr[data-element]").forEach((row) => {
    const info = elements[row.dataset.element] || {};
    row.querySelectorAll("[data-count]").forEach((cell) => {
      cell.textContent = String(info[cell.dataset.count] || 0);
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const diagram = document.querySelector("[data-supervise-diagram]");
  const list = document.getElementById("waiting-list");
  if (!diagram || !list) return;
  diagram.addEventListener("inkless:select", (event) => selectStep(list, event.detail));
  diagram.addEventListener("inkless:overlays", (event) => {
    const table = document.getElementById("counts");
    if (table) updateCounts(table, event.detail.elements || {});
  });
  list.querySelector("[data-show-all]").addEventListener("click", (event) => {
    event.preventDefault();
    selectStep(list, null);
  });
});
