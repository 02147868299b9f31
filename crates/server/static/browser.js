// The directory browser of the Projects and Labs pages, over a listing endpoint of the REST API
// (GET /api/v1/projects/{id}/files, GET /api/v1/labs/{id}/browse): click a folder to descend,
// the breadcrumb to go up, "More" for the next page. Every element it makes gets its text with
// textContent, never as markup.
//
//   <div class="browser" data-browser="ENDPOINT" data-root-label="NAME">
//     optional: <select class="browser-root"> of roots, sent as `root`
//   </div>
"use strict";
(function () {
  const PAGE = 200;

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function size(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + " " + units[i];
  }

  function when(rfc3339) {
    if (!rfc3339) return "";
    return rfc3339.replace("T", " ").replace(/(\.\d+)?(Z|[+-]00:00)$/, " UTC");
  }

  function setup(box) {
    const endpoint = box.dataset.browser;
    const rootSelect = box.querySelector("select.browser-root");
    const state = { path: [], offset: 0, seq: 0 };

    const bar = el("div", "browser-bar");
    const crumbs = el("nav", "crumbs browser-crumbs");
    crumbs.setAttribute("aria-label", "Folder");
    const refresh = el("button", "browser-refresh secondary", "Refresh");
    refresh.type = "button";
    bar.append(crumbs, refresh);
    const error = el("p", "api-error notice error");
    error.setAttribute("role", "alert");
    error.hidden = true;
    const table = el("table", "files");
    const head = el("thead");
    const headRow = el("tr");
    for (const title of ["Name", "Size", "Modified"]) {
      const th = el("th", "", title);
      th.scope = "col";
      headRow.append(th);
    }
    head.append(headRow);
    const body = el("tbody");
    table.append(head, body);
    const status = el("p", "hint browser-status");
    status.setAttribute("aria-live", "polite");
    const more = el("button", "browser-more secondary", "More");
    more.type = "button";
    more.hidden = true;
    box.append(bar, error, table, status, more);

    function rootLabel() {
      return rootSelect ? rootSelect.value : box.dataset.rootLabel || "Files";
    }

    function drawCrumbs() {
      crumbs.replaceChildren();
      const parts = [rootLabel()].concat(state.path);
      parts.forEach((name, i) => {
        if (i > 0) crumbs.append(document.createTextNode(" / "));
        if (i === parts.length - 1) {
          const here = el("span", "crumb", name);
          here.setAttribute("aria-current", "location");
          crumbs.append(here);
        } else {
          const up = el("button", "crumb link-like", name);
          up.type = "button";
          up.addEventListener("click", () => { state.path = state.path.slice(0, i); load(true); });
          crumbs.append(up);
        }
      });
    }

    function row(entry) {
      const tr = el("tr");
      tr.dataset.name = entry.name;
      tr.dataset.kind = entry.kind;
      const name = el("td", "name");
      if (entry.kind === "dir" && entry.name_is_utf8) {
        const open = el("button", "dir link-like", entry.name + "/");
        open.type = "button";
        open.setAttribute("aria-label", "Open folder " + entry.name);
        open.addEventListener("click", () => { state.path = state.path.concat([entry.name]); load(true); });
        name.append(open);
      } else {
        name.append(el("span", "entry " + entry.kind, entry.name + (entry.kind === "dir" ? "/" : "")));
        if (entry.kind === "symlink") name.append(el("span", "hint", " (link)"));
        if (!entry.name_is_utf8) name.append(el("span", "hint", " (name not valid UTF-8)"));
      }
      tr.append(name, el("td", "size", entry.kind === "dir" ? "" : size(entry.size)), el("td", "modified", when(entry.modified)));
      return tr;
    }

    async function load(reset) {
      if (reset) state.offset = 0;
      const seq = ++state.seq;
      const params = new URLSearchParams();
      if (rootSelect) params.set("root", rootSelect.value);
      params.set("path", state.path.join("/"));
      params.set("offset", String(state.offset));
      params.set("limit", String(PAGE));
      box.setAttribute("aria-busy", "true");
      refresh.disabled = more.disabled = true;
      try {
        const res = await fetch(endpoint + "?" + params.toString(), { credentials: "same-origin" });
        const text = await res.text();
        let data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (seq !== state.seq) return; // a newer request took over
        if (!res.ok) throw new Error((data && data.detail) || res.status + " " + res.statusText);
        error.hidden = true;
        error.textContent = "";
        if (reset) body.replaceChildren();
        drawCrumbs();
        for (const entry of data.entries) body.append(row(entry));
        state.offset = data.offset + data.entries.length;
        const shown = body.children.length;
        status.textContent = data.total === 0 ? "This folder is empty."
          : "Showing " + shown + " of " + data.total + (data.total === 1 ? " entry." : " entries.");
        more.hidden = state.offset >= data.total || data.entries.length === 0;
        box.dataset.state = "loaded";
      } catch (e) {
        if (seq !== state.seq) return;
        drawCrumbs();
        error.textContent = e.message;
        error.hidden = false;
        box.dataset.state = "error";
      } finally {
        if (seq === state.seq) {
          box.removeAttribute("aria-busy");
          refresh.disabled = more.disabled = false;
        }
      }
    }

    refresh.addEventListener("click", () => load(true));
    more.addEventListener("click", () => load(false));
    if (rootSelect) rootSelect.addEventListener("change", () => { state.path = []; load(true); });
    drawCrumbs();
    load(true);
  }

  document.querySelectorAll("[data-browser]").forEach(setup);
})();
