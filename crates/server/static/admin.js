// The admin panel's user table: every control calls the same REST API as the CLI, with the
// session's CSRF token. No build step; plain DOM.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const messages = document.getElementById("messages");

  function show(text) {
    if (!messages) return;
    messages.textContent = text;
    messages.hidden = !text;
  }

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error((data && data.detail) || res.statusText);
    show("");
    return data;
  }

  const userPath = (row) => "/api/v1/users/" + row.dataset.userId;
  const patch = (row, body) => api("PATCH", userPath(row), body);

  // Email: pencil -> input with a check to confirm and an X to cancel; outside click cancels.
  let editing = null;
  function cancelEdit() {
    if (!editing) return;
    editing.cell.replaceChildren(...editing.original);
    editing = null;
  }
  function startEdit(cell) {
    cancelEdit();
    const span = cell.querySelector(".email");
    const original = Array.from(cell.childNodes);
    const input = document.createElement("input");
    input.type = "email"; input.value = span.textContent; input.className = "email-input";
    input.setAttribute("aria-label", "New email");
    const ok = document.createElement("button");
    ok.type = "button"; ok.className = "icon confirm"; ok.textContent = "\u2713"; ok.setAttribute("aria-label", "Save email");
    const no = document.createElement("button");
    no.type = "button"; no.className = "icon cancel"; no.textContent = "\u2715"; no.setAttribute("aria-label", "Cancel");
    cell.replaceChildren(input, ok, no);
    editing = { cell, original, span };
    input.focus();
    async function confirm() {
      const row = cell.closest("tr");
      try {
        const user = await patch(row, { email: input.value });
        span.textContent = user.email;
        cancelEdit();
      } catch (e) { show(e.message); input.focus(); }
    }
    ok.addEventListener("click", confirm);
    no.addEventListener("click", cancelEdit);
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") confirm();
      if (ev.key === "Escape") cancelEdit();
    });
  }
  document.addEventListener("mousedown", (ev) => {
    if (editing && !editing.cell.contains(ev.target)) cancelEdit();
  });

  document.addEventListener("click", async (ev) => {
    const t = ev.target;
    const row = t.closest("tr[data-user-id]");
    if (t.matches("button.copy")) {
      const text = document.getElementById(t.dataset.copy).textContent;
      try { await navigator.clipboard.writeText(text); t.textContent = "Copied"; } catch (e) { show("Copy failed: select the token and copy it by hand."); }
      return;
    }
    if (!row) return;
    try {
      if (t.matches("button.edit")) startEdit(t.closest("td"));
      else if (t.matches("button.set-status")) {
        const user = await patch(row, { status: t.dataset.status });
        location.reload();
        return user;
      } else if (t.matches("button.delete")) {
        if (!window.confirm("Delete " + row.dataset.username + "? This is immediate and permanent.")) return;
        await api("DELETE", userPath(row));
        row.remove();
      } else if (t.matches("button.issue-token")) {
        const tok = await api("POST", userPath(row) + "/reset-token", {});
        const cell = t.closest("td");
        const code = document.createElement("code");
        code.className = "token"; code.id = "token-" + row.dataset.userId; code.textContent = tok.token;
        const copy = document.createElement("button");
        copy.type = "button"; copy.className = "copy"; copy.dataset.copy = code.id; copy.textContent = "Copy";
        cell.replaceChildren(document.createTextNode(tok.kind + " token (expires " + tok.expires_at + "): "), code, copy);
      }
    } catch (e) { show(e.message); }
  });

  document.addEventListener("change", async (ev) => {
    const t = ev.target;
    const row = t.closest("tr[data-user-id]");
    if (!row) return;
    try {
      if (t.matches("input.toggle")) await patch(row, { [t.dataset.field]: t.checked });
      else if (t.matches("select.role")) await patch(row, { site_role: t.value });
      else if (t.matches("input.priority")) {
        const v = t.value.trim();
        if (v !== "" && !/^\d+$/.test(v)) throw new Error("default job priority must be a whole number from 0 to 100");
        await patch(row, { default_job_priority: v === "" ? null : Number(v) });
      }
    } catch (e) {
      show(e.message);
      if (t.matches("input.toggle")) t.checked = !t.checked;
    }
  });
})();
