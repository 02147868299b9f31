// Instance Logs: keep the newest line in view, and send the browser's diagnostics with the report.
"use strict";
(function () {
  const log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight;
  const form = document.getElementById("report-form");
  if (!form) return;
  form.addEventListener("submit", () => {
    let errors = [];
    try { errors = JSON.parse(sessionStorage.getItem("cw-client-errors") || "[]"); } catch (e) { errors = []; }
    const d = {
      user_agent: navigator.userAgent,
      screen: { width: screen.width, height: screen.height, pixel_ratio: window.devicePixelRatio },
      viewport: { width: window.innerWidth, height: window.innerHeight },
      time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      language: navigator.language,
      recent_errors: errors,
      page: location.pathname,
      sent_at: new Date().toISOString(),
    };
    document.getElementById("browser-diagnostics").value = JSON.stringify(d);
  });
})();
