// The controls of the Labs and Projects pages: each calls the REST API with the session's CSRF
// token, shows the API's answer (problem+json `detail`) next to the control when it refuses, and
// reloads the page (or goes where `data-go` says) when it succeeds. No build step; plain DOM.
//
//   form[data-api]    submits its named fields as JSON (data-method, default POST); field hints:
//                     data-kind="int" | "lines" | "user" (a username, sent as its id),
//                     data-optional (left out when empty), data-invert (a checkbox sent negated);
//                     data-nobody sends no body; data-confirm asks first
//   button[data-api]  sends data-body (JSON) or nothing; data-confirm asks first
//   select[data-api]  on change sends data-body (JSON) with {name: value}
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  async function api(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) throw new Error((data && data.detail) || res.status + " " + res.statusText);
    return data;
  }

  // The error line of a control: in its form, else its table row or section.
  function errorBox(el) {
    const scope = el.closest("form") || el.closest("tr") || el.closest("section") || document.body;
    let box = scope.querySelector(".api-error");
    if (!box) {
      box = document.createElement("span");
      box.className = "api-error";
      box.setAttribute("role", "alert");
      el.insertAdjacentElement("afterend", box);
    }
    return box;
  }
  function show(el, text) {
    const box = errorBox(el);
    box.textContent = text;
    box.hidden = !text;
  }

  // A username typed by the user, as the id the API takes: from the page's own list of
  // candidates (a datalist) when there is one, else looked up in the users the caller may see.
  async function userId(input) {
    const name = input.value.trim();
    if (!name) throw new Error("type a username");
    const wanted = name.toLowerCase();
    const listId = input.getAttribute("list");
    if (listId) {
      const list = document.getElementById(listId);
      const hit = list && Array.from(list.options).find((o) => o.value.toLowerCase() === wanted);
      if (!hit) throw new Error("`" + name + "` is not someone you can add here: members come from the lab");
      return Number(hit.dataset.userId);
    }
    const page = await api("GET", "/api/v1/users?q=" + encodeURIComponent(name) + "&per_page=500");
    const user = page && page.users.find((u) => u.username.toLowerCase() === wanted);
    if (!user) throw new Error("there is no user named `" + name + "`");
    return user.id;
  }

  async function formBody(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.name === "_csrf") continue;
      if (el.type === "checkbox") {
        out[el.name] = "invert" in el.dataset ? !el.checked : el.checked;
        continue;
      }
      const kind = el.dataset.kind || "";
      const value = el.value;
      if (kind === "lines") {
        out[el.name] = value.split("\n").map((s) => s.trim()).filter(Boolean);
        continue;
      }
      if (value.trim() === "" && "optional" in el.dataset) continue;
      if (kind === "user") out[el.name] = await userId(el);
      else if (kind === "int") out[el.name] = Number(value);
      else out[el.name] = value;
    }
    return out;
  }

  function done(el, data) {
    const go = el.dataset.go;
    if (go) {
      location.assign(go.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(data && data[k] != null ? data[k] : "")));
    } else {
      location.reload();
    }
  }

  async function send(el, body, busy) {
    show(el, "");
    if (busy) busy.disabled = true;
    try {
      const data = await api(el.dataset.method || "POST", el.dataset.api, body === undefined ? undefined : await body());
      done(el, data);
    } catch (e) {
      show(el, e.message);
      if (busy) busy.disabled = false;
    }
  }

  document.addEventListener("submit", (ev) => {
    const form = ev.target.closest("form[data-api]");
    if (!form) return;
    ev.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const button = form.querySelector("button[type=submit]");
    send(form, "nobody" in form.dataset ? undefined : () => formBody(form), button);
  });

  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-api]");
    if (!button) return;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    const body = button.dataset.body;
    send(button, body ? () => JSON.parse(body) : undefined, button);
  });

  document.addEventListener("change", (ev) => {
    const select = ev.target.closest("select[data-api]");
    if (!select) return;
    const extra = select.dataset.body ? JSON.parse(select.dataset.body) : {};
    send(select, () => Object.assign(extra, { [select.name]: select.value }), select);
  });
})();
