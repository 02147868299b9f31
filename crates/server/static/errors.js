// Remembers the last client-side errors of this tab, for the diagnostic report; a
// Content-Security-Policy violation is one of them (the pages are written to cause none).
"use strict";
document.addEventListener("securitypolicyviolation", (ev) => {
  try {
    const list = JSON.parse(sessionStorage.getItem("cw-client-errors") || "[]");
    list.push({ message: "CSP violation: " + ev.violatedDirective + " blocked " + (ev.blockedURI || "inline"),
                source: ev.sourceFile || ev.documentURI, line: ev.lineNumber, csp: true, at: new Date().toISOString() });
    sessionStorage.setItem("cw-client-errors", JSON.stringify(list.slice(-20)));
  } catch (e) { /* storage unavailable */ }
});
window.addEventListener("error", (ev) => {
  try {
    const list = JSON.parse(sessionStorage.getItem("cw-client-errors") || "[]");
    list.push({ message: String(ev.message), source: ev.filename, line: ev.lineno, at: new Date().toISOString() });
    sessionStorage.setItem("cw-client-errors", JSON.stringify(list.slice(-20)));
  } catch (e) { /* storage unavailable */ }
});
