// Remembers the last client-side errors of this tab, for the diagnostic report.
"use strict";
window.addEventListener("error", (ev) => {
  try {
    const list = JSON.parse(sessionStorage.getItem("cw-client-errors") || "[]");
    list.push({ message: String(ev.message), source: ev.filename, line: ev.lineno, at: new Date().toISOString() });
    sessionStorage.setItem("cw-client-errors", JSON.stringify(list.slice(-20)));
  } catch (e) { /* storage unavailable */ }
});
