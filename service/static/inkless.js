// Inkless staff workspace: small enhancements only; every page works without this file.
(function () {
  "use strict";

  // Repeating sections (arrays of objects): add a row from the <template>, remove a row.
  function nextIndex(list, name) {
    var max = -1;
    list.querySelectorAll("[name^='" + name + ".']").forEach(function (el) {
      var head = el.name.slice(name.length + 1).split(".")[0];
      if (/^\d+$/.test(head)) { max = Math.max(max, parseInt(head, 10)); }
    });
    return max + 1;
  }

  document.addEventListener("click", function (event) {
    var add = event.target.closest("[data-add-row]");
    if (add) {
      var box = add.closest("[data-rows]");
      var list = box.querySelector(".row-list");
      var template = box.querySelector("template");
      var index = nextIndex(list, box.getAttribute("data-rows"));
      var html = template.innerHTML.split("__index__").join(String(index))
        .split("__number__").join(String(list.children.length + 1));
      list.insertAdjacentHTML("beforeend", html);
      var first = list.lastElementChild.querySelector("input, select, textarea");
      if (first) { first.focus(); }
      return;
    }
    var remove = event.target.closest("[data-remove-row]");
    if (remove) {
      var row = remove.closest(".row-item");
      var section = row.closest("[data-rows]");
      row.remove();
      var addButton = section.querySelector("[data-add-row]");
      if (addButton) { addButton.focus(); }
      return;
    }
    if (event.target.closest("[data-print]")) {
      window.print();
    }
  });

  // After a refused submission, bring the list of problems into view and focus.
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  });
})();
