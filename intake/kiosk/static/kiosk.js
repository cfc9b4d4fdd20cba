/* The tablet's progressive enhancement. The flow works without this file; with it:
   - questions that depend on an answer on the same screen appear and disappear at once
     (the rules come from the Questionnaire's enableWhen, rendered by the server);
   - answers are saved to the server as they are given (never to browser storage), so a
     patient who walks away after an emergency answer is still triaged;
   - after the idle period the tablet warns, then resets (saving the screen first);
   - a page restored from the back/forward cache is reloaded, so the server decides
     what it shows (after a reset: the start screen, nothing of the last patient). */
(function () {
  "use strict";

  var body = document.body;
  var idle = parseFloat(body.getAttribute("data-idle") || "0") * 1000;
  var warning = parseFloat(body.getAttribute("data-warning") || "0") * 1000;
  var heartbeat = parseFloat(body.getAttribute("data-heartbeat") || "15") * 1000;
  var touchUrl = body.getAttribute("data-touch-url");
  var form = document.getElementById("section-form");
  var resetForm = document.getElementById("timeout-form");
  var overlay = document.getElementById("idle");
  var countEl = document.getElementById("idle-count");

  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { window.location.reload(); }
  });

  /* --- enableWhen on this screen ---------------------------------------------------- */

  function answersOf(linkId) {
    if (!form) { return []; }
    var out = [];
    var inputs = form.querySelectorAll("[name='" + linkId + "']");
    for (var i = 0; i < inputs.length; i++) {
      var el = inputs[i];
      if (el.disabled) { continue; }
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) { continue; }
      if (el.value === "") { continue; }
      var v = el.value;
      if (v === "true") { v = true; } else if (v === "false") { v = false; }
      else if (el.type === "number") { v = parseInt(v, 10); }
      out.push(v);
    }
    return out;
  }

  function holds(cond) {
    var values = answersOf(cond[0]);
    var op = cond[1];
    var target = cond[2];
    var equal = values.some(function (v) { return v === target; });
    if (op === "exists") { return (values.length > 0) === target; }
    if (op === "=") { return equal; }
    if (op === "!=") { return !equal; }
    var nums = values.filter(function (v) { return typeof v === "number"; });
    if (op === ">") { return nums.some(function (v) { return v > target; }); }
    if (op === "<") { return nums.some(function (v) { return v < target; }); }
    if (op === ">=") { return nums.some(function (v) { return v >= target; }); }
    if (op === "<=") { return nums.some(function (v) { return v <= target; }); }
    return true;
  }

  function applyRules() {
    if (!form) { return; }
    var items = form.querySelectorAll("[data-enable]");
    for (var i = 0; i < items.length; i++) {
      var item = items[i];
      var rule = JSON.parse(item.getAttribute("data-enable"));
      var results = rule.c.map(holds);
      var on = rule.b === "any" ? results.some(Boolean) : results.every(Boolean);
      item.hidden = !on;
      var inputs = item.querySelectorAll("input");
      for (var j = 0; j < inputs.length; j++) { inputs[j].disabled = !on; }
    }
  }

  /* A "none of these" answer excludes the others, and the others exclude it. */
  function exclusive(event) {
    var el = event.target;
    if (!el || el.type !== "checkbox" || !el.checked) { return; }
    var exclusiveCode = el.getAttribute("data-exclusive-code");
    var group = form.querySelectorAll("input[type=checkbox][name='" + el.name + "']");
    for (var i = 0; i < group.length; i++) {
      var other = group[i];
      if (other === el) { continue; }
      var otherIsNone = other.value === other.getAttribute("data-exclusive-code");
      if (el.value === exclusiveCode || otherIsNone) { other.checked = false; }
    }
  }

  /* --- saving to the server --------------------------------------------------------- */

  var lastSent = 0;
  var saveTimer = null;

  function post(url, data) {
    lastSent = Date.now();
    try {
      return fetch(url, { method: "POST", body: data, credentials: "same-origin",
                          keepalive: true, redirect: "manual" });
    } catch (e) { return null; }
  }

  function autosave() {
    if (!form) { return; }
    var data = new FormData(form);
    data.set("action", "autosave");
    post(form.getAttribute("action"), data);  // not form.action: a field is named "action"
  }

  function scheduleSave() {
    if (saveTimer) { clearTimeout(saveTimer); }
    saveTimer = setTimeout(function () { saveTimer = null; autosave(); }, 250);
  }

  /* Leaving the page some other way than this form (a link, the back button): an
     answer given in the last moment is still sent (keepalive outlives the page). */
  window.addEventListener("pagehide", function () {
    if (saveTimer && !leaving) { clearTimeout(saveTimer); saveTimer = null; autosave(); }
  });

  function ping() {
    if (Date.now() - lastSent < heartbeat) { return; }
    if (form) { autosave(); return; }
    if (touchUrl && resetForm) {
      var data = new FormData();
      data.set("csrf_token", resetForm.querySelector("[name=csrf_token]").value);
      post(touchUrl, data);
    }
  }

  /* --- idle warning and reset ------------------------------------------------------- */

  var idleTimer = null;
  var countTimer = null;
  var deadline = 0;
  var leaving = false;

  function timeout() {
    if (leaving) { return; }
    leaving = true;
    if (form) {
      var action = document.createElement("input");
      action.type = "hidden";
      action.name = "action";
      action.value = "timeout";
      form.appendChild(action);
      form.submit();
    } else if (resetForm) {
      resetForm.submit();
    } else if (body.getAttribute("data-reset-url")) {
      /* The staff start screen: forget what was typed (a fresh page, no history entry). */
      window.location.replace(body.getAttribute("data-reset-url"));
    }
  }

  function tick() {
    var left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    if (countEl) { countEl.textContent = countEl.getAttribute("data-template").replace("{s}", left); }
    if (left <= 0) { timeout(); return; }
    countTimer = setTimeout(tick, 250);
  }

  function warn() {
    if (!overlay) { timeout(); return; }
    overlay.hidden = false;
    deadline = Date.now() + warning;
    var button = overlay.querySelector("button");
    if (button) { button.focus(); }
    tick();
  }

  function activity() {
    if (leaving) { return; }
    if (overlay && !overlay.hidden) {
      overlay.hidden = true;
      if (countTimer) { clearTimeout(countTimer); }
    }
    if (idleTimer) { clearTimeout(idleTimer); }
    if (idle > 0) { idleTimer = setTimeout(warn, idle); }
    ping();
  }

  if (idle > 0) {
    ["pointerdown", "keydown", "touchstart", "wheel"].forEach(function (name) {
      document.addEventListener(name, activity, { passive: true, capture: true });
    });
    activity();
  }

  if (form) {
    form.addEventListener("change", function (event) {
      exclusive(event);
      applyRules();
      scheduleSave();
    });
    form.addEventListener("submit", function (event) {
      if (leaving) { return; }
      var submitter = event.submitter;
      if (form.getAttribute("data-sending") === "1") { event.preventDefault(); return; }
      form.setAttribute("data-sending", "1");
      if (submitter) { setTimeout(function () { submitter.disabled = true; }, 0); }
      leaving = true;
    });
    applyRules();
  }

  /* A Send button pressed twice sends once. */
  var sendForms = document.querySelectorAll("form[data-once]");
  for (var i = 0; i < sendForms.length; i++) {
    sendForms[i].addEventListener("submit", function (event) {
      var f = event.target;
      if (f.getAttribute("data-sending") === "1") { event.preventDefault(); return; }
      f.setAttribute("data-sending", "1");
      leaving = true;
    });
  }

  /* --- waiting for the result -------------------------------------------------------- */

  var waiting = document.getElementById("waiting");
  if (waiting) {
    var statusUrl = waiting.getAttribute("data-status-url");
    var doneUrl = waiting.getAttribute("data-done-url");
    var until = Date.now() + parseFloat(waiting.getAttribute("data-wait")) * 1000 + 500;
    var poll = function () {
      if (Date.now() > until) { window.location.replace(doneUrl); return; }
      fetch(statusUrl, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (data.ready) { window.location.replace(doneUrl); } else { setTimeout(poll, 250); }
        })
        .catch(function () { setTimeout(poll, 500); });
    };
    setTimeout(poll, 150);
  }

  /* --- the closing message returns to the start screen ------------------------------------ */

  // (Not after an emergency: that message stays until staff clear it with the PIN.)
  var done = document.getElementById("done");
  if (done && done.hasAttribute("data-seconds")) {
    var after = parseFloat(done.getAttribute("data-seconds")) * 1000;
    setTimeout(function () { window.location.replace(done.getAttribute("data-start-url")); }, after);
  }

  /* --- staff start screen: show only the fields for the kind of patient ------------------- */

  var kinds = document.querySelectorAll("input[name=patient]");
  if (kinds.length) {
    var showKind = function () {
      var chosen = document.querySelector("input[name=patient]:checked");
      var value = chosen ? chosen.value : "";
      var blocks = document.querySelectorAll("[data-kind]");
      for (var k = 0; k < blocks.length; k++) {
        blocks[k].hidden = value !== "" && blocks[k].getAttribute("data-kind") !== value;
      }
    };
    for (var n = 0; n < kinds.length; n++) { kinds[n].addEventListener("change", showKind); }
    showKind();
  }
})();
