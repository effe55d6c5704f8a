// Security keys (WebAuthn): registration on the security page, use at the sign-in code step.
// The server sends options as JSON (py_webauthn's options_to_json, binary fields base64url) and
// takes the credential back as JSON in the same encoding. No inline script: the page marks the
// controls with data- attributes and this file wires them up.
(function () {
  "use strict";

  function fromB64url(value) {
    const b64 = value.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((value.length + 3) % 4);
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
  }

  function toB64url(buffer) {
    let text = "";
    new Uint8Array(buffer).forEach((b) => { text += String.fromCharCode(b); });
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function post(url, csrf, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    return { ok: response.ok, data: data };
  }

  function say(box, message) {
    const out = document.getElementById(box.dataset.errorId);
    if (out) { out.textContent = message; out.hidden = false; }
  }

  async function register(box) {
    const options = await post(box.dataset.optionsUrl, box.dataset.csrf);
    if (!options.ok) { say(box, options.data.message || box.dataset.failed); return; }
    const publicKey = options.data;
    publicKey.challenge = fromB64url(publicKey.challenge);
    publicKey.user.id = fromB64url(publicKey.user.id);
    (publicKey.excludeCredentials || []).forEach((c) => { c.id = fromB64url(c.id); });
    let credential;
    try {
      credential = await navigator.credentials.create({ publicKey: publicKey });
    } catch (e) { say(box, box.dataset.failed); return; }
    const nameInput = document.getElementById(box.dataset.nameId);
    const answer = await post(box.dataset.registerUrl, box.dataset.csrf, {
      name: nameInput ? nameInput.value : "",
      next: box.dataset.next,
      credential: {
        id: credential.id, rawId: toB64url(credential.rawId), type: credential.type,
        response: {
          clientDataJSON: toB64url(credential.response.clientDataJSON),
          attestationObject: toB64url(credential.response.attestationObject),
          transports: credential.response.getTransports ? credential.response.getTransports() : [],
        },
      },
    });
    if (!answer.ok) { say(box, answer.data.message || box.dataset.failed); return; }
    const codes = answer.data.codes;
    const section = document.getElementById(box.dataset.codesId);
    if (codes && section) {
      const list = section.querySelector("ul");
      codes.forEach((code) => {
        const item = document.createElement("li");
        const text = document.createElement("code");
        text.className = "secret";
        text.textContent = code;
        item.appendChild(text);
        list.appendChild(item);
      });
      section.querySelector("a").href = answer.data.next;
      section.hidden = false;
      box.hidden = true;
      section.focus();
    } else {
      window.location.assign(answer.data.next);
    }
  }

  async function signIn(box) {
    const options = await post(box.dataset.optionsUrl, box.dataset.csrf);
    if (!options.ok) { say(box, options.data.message || box.dataset.failed); return; }
    const publicKey = options.data;
    publicKey.challenge = fromB64url(publicKey.challenge);
    (publicKey.allowCredentials || []).forEach((c) => { c.id = fromB64url(c.id); });
    let credential;
    try {
      credential = await navigator.credentials.get({ publicKey: publicKey });
    } catch (e) { say(box, box.dataset.failed); return; }
    const r = credential.response;
    const answer = await post(box.dataset.answerUrl, box.dataset.csrf, {
      id: credential.id, rawId: toB64url(credential.rawId), type: credential.type,
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        authenticatorData: toB64url(r.authenticatorData),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null,
      },
    });
    if (!answer.ok) { say(box, answer.data.message || box.dataset.failed); return; }
    window.location.assign(answer.data.next);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const supported = !!(window.PublicKeyCredential && navigator.credentials);
    document.querySelectorAll("[data-webauthn]").forEach((box) => {
      const button = box.querySelector("button");
      if (!supported) {
        button.disabled = true;
        say(box, box.dataset.unsupported);
        return;
      }
      const run = box.dataset.webauthn === "register" ? register : signIn;
      button.addEventListener("click", () => { run(box); });
    });
  });
})();
