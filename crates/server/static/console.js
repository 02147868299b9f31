// The Admin Console: each editable row's form is sent as JSON to PUT /api/v1/console/{key},
// actions to POST /api/v1/console/{key}/{action}, with the session's CSRF token. Field names
// may be dotted (banner.text) for nested values. No build step; plain DOM.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error((data && data.detail) || res.statusText);
    return data;
  }

  function valueOf(input) {
    switch (input.dataset.kind) {
      case "bool": return input.checked;
      case "number": return input.value === "" ? null : Number(input.value);
      case "lines": return input.value.split("\n").map((s) => s.trim()).filter((s) => s !== "");
      default: return input.value;
    }
  }

  function collect(form) {
    const body = {};
    for (const input of form.querySelectorAll("[name]")) {
      if (input.disabled) continue;
      const path = input.name.split(".");
      let at = body;
      for (const k of path.slice(0, -1)) at = at[k] = at[k] || {};
      at[path[path.length - 1]] = valueOf(input);
    }
    return body;
  }

  // Nested values are sent whole: fill in the row's other parts of an object being changed.
  for (const form of document.querySelectorAll("form.console-form")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const status = form.querySelector(".console-status");
      status.textContent = "Saving…";
      try {
        await api("PUT", "/api/v1/console/" + form.dataset.setting, collect(form));
        status.textContent = "Saved.";
      } catch (e) {
        status.textContent = e.message;
      }
    });
  }
  for (const form of document.querySelectorAll("form.console-action")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const status = form.querySelector(".console-status");
      status.textContent = "Working…";
      try {
        const out = await api("POST", "/api/v1/console/" + form.dataset.setting + "/" + form.dataset.action, collect(form));
        status.textContent = "Done: " + JSON.stringify(out);
      } catch (e) {
        status.textContent = e.message;
      }
    });
  }
})();
