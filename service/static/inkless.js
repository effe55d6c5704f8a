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

  // Document fields: upload a document in a dialog and choose it without leaving the task form,
  // so nothing typed there is lost. Without script the link opens the upload page, which comes
  // back to the task with the new document chosen. The dialog shows the upload page's own form
  // (same fields, same errors); its answer is a redirect whose URL names the new document.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-upload-document]");
    if (!link || typeof HTMLDialogElement === "undefined" || !window.fetch) { return; }
    event.preventDefault();
    var dialog = document.getElementById("upload-dialog");
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.id = "upload-dialog";
      dialog.setAttribute("aria-labelledby", "upload-dialog-h");
      document.body.appendChild(dialog);
    }
    fetch(link.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
      showUpload(dialog, html, link);
      dialog.showModal();
    });
  });

  function showUpload(dialog, html, link) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var form = page.querySelector("form.docform");
    if (!form) { window.location.href = link.href; return; }
    var heading = document.importNode(page.querySelector("main h1"), true);
    heading.id = "upload-dialog-h";
    dialog.replaceChildren(heading);
    var summary = page.querySelector(".error-summary");
    if (summary) { dialog.append(document.importNode(summary, true)); }
    form = document.importNode(form, true);
    var back = form.querySelector(".submit-row a");
    if (back) {
      var cancel = document.createElement("button");
      cancel.type = "button";
      cancel.textContent = link.getAttribute("data-cancel");
      cancel.addEventListener("click", function () { dialog.close(); link.focus(); });
      back.replaceWith(cancel);
    }
    dialog.append(form);
    var first = dialog.querySelector("[aria-invalid='true']") || form.querySelector("input, select, textarea");
    if (first) { first.focus(); }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var title = form.querySelector("[name=title]").value;
      var level = form.querySelector("[name=security_level]").value;
      fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" }).then(function (r) {
        var attached = /[?&]attach=(\d+)/.exec(r.url);
        if (r.redirected && attached) {
          chooseDocument(link, attached[1], title, level);
          dialog.close();
          return null;
        }
        return r.text().then(function (answer) { showUpload(dialog, answer, link); });
      });
    });
  }

  function chooseDocument(link, id, title, level) {
    var fieldset = link.closest("fieldset.documents");
    var options = fieldset.querySelector(".options");
    var input = document.createElement("input");
    input.type = fieldset.hasAttribute("data-many") ? "checkbox" : "radio";
    input.id = fieldset.id + "-new-" + id;
    input.name = link.getAttribute("data-upload-document");
    input.value = id;
    input.checked = true;
    var label = document.createElement("label");
    label.className = "option";
    label.htmlFor = input.id;
    var text = document.createElement("span");
    var badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = level;
    text.append(title + " ", badge);
    label.append(input, text);
    var empty = options.querySelector("p.muted");
    if (empty) { empty.remove(); }
    options.prepend(label);
    input.focus();
  }

  // After a refused submission, bring the list of problems into view and focus.
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  });
})();
