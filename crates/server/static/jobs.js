// The pages of jobs and lanes: the admin panel's Cluster Configuration, Lane Restrictions and
// Current Jobs tabs, and the Jobs section of a project's page. Every change goes through the REST
// API with the session's CSRF token; the API's refusal (problem+json `detail`) is shown next to
// the control. Controls the server did not render (the viewer may not act) are not created here
// either: the page says what the viewer may do (data-editable, data-can-edit, data-kill-*).
// No build step; plain DOM, text set with textContent only.
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
    if (!res.ok) {
      const err = new Error((data && data.detail) || res.status + " " + res.statusText);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function show(box, text) {
    if (!box) return;
    box.textContent = text;
    box.hidden = !text;
  }

  // An element with attributes (a value of true: present and empty; false or null: absent) and
  // children (strings become text nodes).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  const ACTIVE = ["queued", "launched", "running"];
  const TERMINAL = ["completed", "failed", "killed"];
  const typeText = (j) => j.job_type.replace(/_/g, " ");
  // The same texts as web/jobs.rs renders (gpus_text, queue_text).
  function gpusText(j) {
    const held = j.assigned && Array.isArray(j.assigned.gpus) ? j.assigned.gpus : [];
    if (held.length) return held.join(", ");
    if (j.gpu_ids && j.gpu_ids.length) return j.gpu_ids.join(", ") + " (asked)";
    if (j.num_gpu > 0) return j.num_gpu + " (any)";
    return "\u2014";
  }
  function queueText(j) {
    const parts = [];
    if (j.queue_state) parts.push(j.queue_state.replace(/_/g, " "));
    if (j.queue_message) parts.push(j.queue_message);
    if (parts.length) return parts.join(": ");
    return j.failure || "\u2014";
  }
  const statusBadge = (status) => el("span", { class: "status " + status, text: status });
  const every = (ms, fn) => setInterval(() => { if (!document.hidden) fn(); }, ms);

  // ------------------------------------------------------------ Cluster Configuration
  const cluster = document.getElementById("cluster-config");
  if (cluster) {
    const varsForm = document.getElementById("instance-vars-form");
    if (varsForm && cluster.dataset.editableVars === "true") {
      const tbody = varsForm.querySelector("tbody");
      const box = varsForm.querySelector(".api-error");
      const empty = document.getElementById("instance-vars-empty");
      const refreshEmpty = () => { empty.hidden = tbody.rows.length > 0; };
      document.getElementById("instance-var-add").addEventListener("click", () => {
        const name = el("input", { class: "var-name", "aria-label": "Variable name", maxlength: 64, autocomplete: "off" });
        const row = el("tr", { class: "var-row" },
          el("td", {}, name),
          el("td", {}, el("input", { class: "var-value", "aria-label": "Value", maxlength: 4096, autocomplete: "off" })),
          el("td", {}, el("button", { type: "button", class: "danger var-remove", text: "Remove" })));
        tbody.append(row);
        refreshEmpty();
        name.focus();
      });
      varsForm.addEventListener("click", (ev) => {
        const b = ev.target.closest("button.var-remove");
        if (!b) return;
        b.closest("tr").remove();
        refreshEmpty();
      });
      varsForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const vars = {};
        for (const row of tbody.querySelectorAll("tr.var-row")) {
          const name = row.querySelector(".var-name").value.trim();
          const value = row.querySelector(".var-value").value;
          if (!name) {
            if (value === "") continue;
            show(box, "a value needs a variable name");
            return;
          }
          if (Object.prototype.hasOwnProperty.call(vars, name)) {
            show(box, "`" + name + "` is listed twice");
            return;
          }
          vars[name] = value;
        }
        show(box, "");
        try {
          await api("PUT", "/api/v1/custom-vars", vars);
          location.reload();
        } catch (e) { show(box, e.message); }
      });
    }
    for (const form of document.querySelectorAll("form.target-vars")) {
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const box = form.querySelector(".api-error");
        // An empty value is no value of the target's: the instance's applies.
        const vars = {};
        for (const input of form.querySelectorAll("input.target-var")) {
          if (input.value !== "") vars[input.dataset.var] = input.value;
        }
        show(box, "");
        try {
          await api("PUT", "/api/v1/targets/" + form.dataset.targetId + "/custom-vars", vars);
          location.reload();
        } catch (e) { show(box, e.message); }
      });
    }
    const nodeForm = document.getElementById("new-node-lane-form");
    if (nodeForm) {
      nodeForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const box = nodeForm.querySelector(".api-error");
        const value = (id) => document.getElementById(id).value.trim();
        const parts = value("node-gpus").split(/[\s,]+/).filter(Boolean);
        if (parts.some((p) => !/^\d+$/.test(p))) {
          show(box, "GPU ids are whole numbers separated by commas, e.g. 0,1");
          return;
        }
        const button = nodeForm.querySelector("button[type=submit]");
        button.disabled = true;
        show(box, "");
        let lane = null;
        try {
          lane = await api("POST", "/api/v1/lanes", { name: value("node-lane-name"), kind: "node" });
          await api("POST", "/api/v1/lanes/" + lane.id + "/targets", {
            name: value("node-target-name"),
            cpus: Number(value("node-cpus")),
            ram_gb: Number(value("node-ram")),
            gpus: parts.map((p) => ({ id: Number(p) })),
          });
          location.reload();
        } catch (e) {
          // A lane without its target is not what was asked for: take it away again.
          if (lane) { try { await api("DELETE", "/api/v1/lanes/" + lane.id); } catch (_) { /* shown below */ } }
          show(box, e.message);
          button.disabled = false;
        }
      });
    }
  }

  // ------------------------------------------------------------ Lane Restrictions
  const picker = document.getElementById("lane-user");
  if (picker) picker.addEventListener("change", () => { if (picker.value) picker.form.submit(); });
  const restrictions = document.getElementById("lane-restrictions");
  if (restrictions) {
    const editable = restrictions.dataset.editable === "true";
    const allowed = document.getElementById("lanes-allowed");
    const denied = document.getElementById("lanes-not-allowed");
    const box = restrictions.querySelector(".api-error");
    const saved = document.getElementById("lanes-saved");
    const names = (ul) => Array.from(ul.querySelectorAll("li[data-lane]")).map((li) => li.dataset.lane);
    function item(name, to) {
      const label = to === "not_allowed" ? "Not allowed \u2192" : "\u2190 Allowed";
      const button = editable ? el("button", {
        type: "button", class: to === "not_allowed" ? "lane-move danger" : "lane-move", "data-lane": name, "data-to": to,
        "aria-label": "Move " + name + " to " + (to === "not_allowed" ? "Not allowed" : "Allowed"), text: label,
      }) : null;
      const span = el("span", { class: "lane-name", text: name });
      return to === "not_allowed"
        ? el("li", { "data-lane": name }, span, button ? " " : null, button)
        : el("li", { "data-lane": name }, button, button ? " " : null, span);
    }
    function fill(ul, lanes, to) {
      ul.replaceChildren(...(lanes.length ? lanes.map((n) => item(n, to)) : [el("li", { class: "hint empty", text: "none" })]));
    }
    restrictions.addEventListener("click", async (ev) => {
      const b = ev.target.closest("button.lane-move");
      if (!b || !editable) return;
      const lane = b.dataset.lane;
      const notAllowed = names(denied).filter((n) => n !== lane);
      if (b.dataset.to === "not_allowed") notAllowed.push(lane);
      for (const other of restrictions.querySelectorAll("button.lane-move")) other.disabled = true;
      show(box, "");
      saved.textContent = "";
      try {
        const lanes = await api("PUT", "/api/v1/users/" + restrictions.dataset.userId + "/lanes", { not_allowed: notAllowed });
        fill(allowed, lanes.allowed, "not_allowed");
        fill(denied, lanes.not_allowed, "allowed");
        saved.textContent = "Saved: " + lane + (lanes.not_allowed.includes(lane) ? " is not allowed." : " is allowed.");
      } catch (e) {
        show(box, e.message);
        for (const other of restrictions.querySelectorAll("button.lane-move")) other.disabled = false;
      }
    });
  }

  // ------------------------------------------------------------ Kill, clear, queue (both job tables)
  // `after` re-renders the table the button belongs to.
  async function jobAction(button, path, body, errorBox, after) {
    button.disabled = true;
    show(errorBox, "");
    try {
      await api("POST", path, body);
    } catch (e) {
      show(errorBox, e.message);
      button.disabled = false;
      return;
    }
    await after();
  }

  // ------------------------------------------------------------ Current Jobs
  const current = document.getElementById("current-jobs");
  if (current) {
    const killAny = current.dataset.killAny === "true";
    const killProjects = new Set((current.dataset.killProjects || "").split(",").filter(Boolean).map(Number));
    const tbody = current.querySelector("tbody");
    const empty = document.getElementById("current-jobs-empty");
    const updated = document.getElementById("current-jobs-updated");
    const errorBox = document.getElementById("current-jobs-error");
    function row(j) {
      const kill = (killAny || killProjects.has(j.project_id)) && ACTIVE.includes(j.status);
      const label = j.project + "/" + j.uid;
      return el("tr", { "data-job-id": j.id, "data-project-id": j.project_id },
        el("td", {}, el("a", { href: "/projects/" + j.project_id, text: j.project })),
        el("td", { class: "uid", text: j.uid }),
        el("td", { text: typeText(j) }),
        el("td", { text: j.creator || "\u2014" }),
        el("td", { class: "priority", text: j.priority }),
        el("td", { text: j.lane || "\u2014" }),
        el("td", { class: "gpus", text: gpusText(j) }),
        el("td", { class: "status" }, statusBadge(j.status)),
        el("td", { class: "queue", text: queueText(j) }),
        el("td", {}, kill ? el("button", {
          type: "button", class: "danger job-kill", "data-job-id": j.id, "data-label": label, "aria-label": "Kill " + label, text: "Kill",
        }) : null));
    }
    async function refresh() {
      try {
        const list = await api("GET", current.dataset.source);
        tbody.replaceChildren(...list.map(row));
        empty.hidden = list.length > 0;
        updated.textContent = "Updated at " + new Date().toLocaleTimeString() + ".";
      } catch (e) {
        updated.textContent = "Could not refresh: " + e.message;
      }
    }
    current.addEventListener("click", (ev) => {
      const b = ev.target.closest("button.job-kill");
      if (!b) return;
      if (!window.confirm("Kill " + b.dataset.label + "?")) return;
      jobAction(b, "/api/v1/jobs/" + b.dataset.jobId + "/kill", undefined, errorBox, refresh);
    });
    every(3000, refresh);
  }

  // ------------------------------------------------------------ a project's jobs and logs
  const section = document.getElementById("project-jobs");
  if (section) {
    const projectId = Number(section.dataset.projectId);
    const canEdit = section.dataset.canEdit === "true";
    const form = document.getElementById("validation-job-form");
    const lane = document.getElementById("validation-lane");
    const tbody = section.querySelector("#project-jobs-table tbody");
    const empty = document.getElementById("project-jobs-empty");
    const errorBox = document.getElementById("project-jobs-error");
    const source = "/api/v1/jobs?project=" + projectId + "&limit=" + section.dataset.limit;
    const log = {
      box: document.getElementById("job-log"),
      uid: document.getElementById("job-log-uid"),
      status: document.getElementById("job-log-status"),
      text: document.getElementById("job-log-text"),
    };
    let following = null; // {id, offset}: the job whose log is shown

    function row(j) {
      const actions = el("td", {});
      if (canEdit && ACTIVE.includes(j.status)) {
        actions.append(el("button", { type: "button", class: "danger job-kill", "data-job-id": j.id, "data-label": j.uid, "aria-label": "Kill " + j.uid, text: "Kill" }));
      }
      if (canEdit && TERMINAL.includes(j.status)) {
        actions.append(el("button", { type: "button", class: "secondary job-clear", "data-job-id": j.id, "aria-label": "Clear " + j.uid, text: "Clear" }));
      }
      if (lane && j.status === "building") {
        actions.append(el("button", { type: "button", class: "secondary job-queue", "data-job-id": j.id, "aria-label": "Queue " + j.uid, text: "Queue" }));
      }
      const title = typeText(j);
      return el("tr", { "data-job-id": j.id, "data-uid": j.uid, "data-status": j.status, class: following && following.id === j.id ? "selected" : null },
        el("td", {}, el("button", { type: "button", class: "link-like job-open", "data-job-id": j.id, "data-uid": j.uid, "aria-label": "Show the log of " + j.uid, text: j.uid })),
        el("td", {}, title, j.title !== title ? " " : null, j.title !== title ? el("span", { class: "hint", text: j.title }) : null),
        el("td", { class: "status" }, statusBadge(j.status)),
        el("td", { text: j.lane || "\u2014" }),
        el("td", { class: "priority", text: j.priority }),
        el("td", { class: "queue", text: queueText(j) }),
        el("td", { class: "created", text: j.created_at }),
        actions);
    }
    let busy = true; // some job is queued, launched or running: refresh often
    async function refresh() {
      try {
        const list = await api("GET", source);
        list.sort((a, b) => b.id - a.id);
        tbody.replaceChildren(...list.map(row));
        empty.hidden = list.length > 0;
        busy = list.some((j) => ACTIVE.includes(j.status));
      } catch (e) {
        show(errorBox, "Could not refresh the jobs: " + e.message);
      }
    }

    // The log from where it was last read; while the job may still write, again a second later.
    // The status is read before the log: when it says the job is over, that read has it all.
    async function follow(id, uid) {
      const me = { id, offset: 0 };
      following = me;
      log.box.hidden = false;
      log.uid.textContent = uid;
      log.status.textContent = "";
      log.text.textContent = "";
      for (const tr of tbody.rows) tr.classList.toggle("selected", Number(tr.dataset.jobId) === id);
      while (following === me) {
        let status;
        try {
          status = (await api("GET", "/api/v1/jobs/" + id)).status;
          const chunk = await api("GET", "/api/v1/jobs/" + id + "/log?offset=" + me.offset);
          if (following !== me) return;
          if (chunk.text) {
            const atBottom = log.text.scrollTop + log.text.clientHeight >= log.text.scrollHeight - 4;
            log.text.append(chunk.text);
            if (atBottom) log.text.scrollTop = log.text.scrollHeight;
          }
          me.offset = chunk.next_offset;
          const done = TERMINAL.includes(status) || status === "building";
          log.status.textContent = "(" + status + (done ? "" : ", following") + ")";
          if (chunk.next_offset - chunk.offset >= 1048576) continue; // a full chunk: more is there now
          if (done) {
            if (!log.text.textContent) log.text.textContent = status === "building" ? "(not run yet)" : "(no log)";
            return;
          }
        } catch (e) {
          if (following === me) log.status.textContent = "(" + e.message + ")";
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }

    section.addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      if (!b) return;
      const path = "/api/v1/jobs/" + b.dataset.jobId;
      if (b.matches(".job-open")) {
        follow(Number(b.dataset.jobId), b.dataset.uid);
      } else if (b.matches(".job-kill")) {
        if (!window.confirm("Kill " + b.dataset.label + "?")) return;
        jobAction(b, path + "/kill", undefined, errorBox, refresh);
      } else if (b.matches(".job-clear")) {
        jobAction(b, path + "/clear", undefined, errorBox, refresh);
      } else if (b.matches(".job-queue")) {
        jobAction(b, path + "/queue", { lane: lane.value }, errorBox, refresh);
      } else if (b.id === "job-log-close") {
        following = null;
        log.box.hidden = true;
        for (const tr of tbody.rows) tr.classList.remove("selected");
      }
    });

    if (form) {
      // A job created here whose queueing was refused: the next attempt queues that one rather
      // than creating another.
      let pending = null;
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const box = form.querySelector(".api-error");
        const button = form.querySelector("button[type=submit]");
        button.disabled = true;
        show(box, "");
        let job = pending;
        try {
          if (!job) job = await api("POST", "/api/v1/jobs", { project_id: projectId, job_type: "validation" });
          pending = job;
          const queued = await api("POST", "/api/v1/jobs/" + job.id + "/queue", { lane: lane.value });
          pending = null;
          await refresh();
          follow(queued.id, queued.uid);
        } catch (e) {
          // 409: the job is no longer building (queued or cleared meanwhile): start afresh next time.
          if (e.status === 409) pending = null;
          show(box, job ? job.uid + " was not queued: " + e.message : e.message);
          refresh();
        } finally {
          button.disabled = false;
        }
      });
    }
    // Every 2.5 s while a job is active, else every 15 s (a job queued elsewhere shows up too).
    let idle = 0;
    every(2500, () => {
      idle = busy ? 0 : idle + 1;
      if (busy || idle % 6 === 0) refresh();
    });
  }
})();
