/* The practitioners' pages, live. The stream is live.js's (shared with the desk and the
   board: the alerts, their sound, the connection state); it tells this script which
   intakes changed. The worklist reloads its table when an intake arrives, a result, a
   delivery attempt or another practitioner's action is stored. The case view reloads
   itself when its intake changes, unless something is being typed (then it says so). No
   inline script or style: the pages run under a strict Content-Security-Policy. */
(function () {
  "use strict";
  var root = document.getElementById("review");
  if (!root) { return; }
  var view = root.getAttribute("data-view");
  var rowsUrl = root.getAttribute("data-rows-url");
  var intakeId = root.getAttribute("data-intake-id");
  var awaiting = root.getAttribute("data-awaiting") === "true";
  var worklist = document.getElementById("worklist");
  var updated = document.getElementById("updated");
  var refreshTimer = null;
  var dirty = false;

  /* --- forms: one submission each (a double click must not post twice) ------------- */
  Array.prototype.forEach.call(document.querySelectorAll("form[data-once]"), function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sent") === "1") { event.preventDefault(); return; }
      form.setAttribute("data-sent", "1");
      Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (b) {
        b.setAttribute("aria-disabled", "true");
      });
    });
    form.addEventListener("input", function () { dirty = true; });
    form.addEventListener("change", function () { dirty = true; });
  });

  /* --- the list ---------------------------------------------------------------------------- */
  function refreshRows() {
    if (!worklist || !rowsUrl) { return; }
    fetch(rowsUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (r.ok) { return r.text(); } throw new Error(String(r.status)); })
      .then(function (html) {
        worklist.innerHTML = html;
        worklist.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next event or the periodic refresh tries again */ });
  }

  function scheduleRefresh() {
    if (refreshTimer) { return; }
    refreshTimer = window.setTimeout(function () { refreshTimer = null; refreshRows(); }, 300);
  }

  /* --- the case view ----------------------------------------------------------------------- */
  var scrollKey = "review-scroll:" + window.location.pathname;

  function reloadCase() {
    // Without the "done" notice of the action that led here: it described the page
    // before this change. The reader keeps their place on the page.
    try { window.sessionStorage.setItem(scrollKey, String(window.scrollY)); } catch (e) { /* */ }
    var params = new URLSearchParams(window.location.search);
    params.delete("done");
    var query = params.toString();
    window.location.replace(window.location.pathname + (query ? "?" + query : ""));
  }

  if (view === "case") {
    try {
      var kept = window.sessionStorage.getItem(scrollKey);
      if (kept !== null) {
        window.sessionStorage.removeItem(scrollKey);
        window.scrollTo(0, parseInt(kept, 10) || 0);
      }
    } catch (e) { /* private mode: start at the top */ }
  }

  function caseChanged(kind) {
    var isResult = kind === "result";
    if ((awaiting && isResult) || !dirty) {
      reloadCase();
      return;
    }
    if (updated) { updated.hidden = false; }
  }

  /* --- what the live stream (live.js) reports ---------------------------------------- */
  document.addEventListener("intake:changed", function (event) {
    var data = event.detail || {};
    if (view === "worklist") {
      if (data.all || (data.intakes && data.intakes.length)) { scheduleRefresh(); }
    } else if (view === "case" && (data.intakes || []).indexOf(intakeId) >= 0) {
      caseChanged((data.kinds || []).indexOf("result") >= 0 ? "result" : "other");
    } else if (view === "case" && data.all && awaiting) {
      reloadCase();  // the live process restarted: the result may have come meanwhile
    }
  });

  if (view === "worklist") {
    // Times since arrival and anything the stream does not report.
    window.setInterval(refreshRows, 60000);
  }
})();
