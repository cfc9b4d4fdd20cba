/* The practitioners' pages, live. One stream (server-sent events) per page, bounded by
   the server and reopened here from the last event id, so nothing is missed between
   connections. The worklist reloads its table when an intake arrives, a result, a
   delivery attempt or another practitioner's action is stored; an emergency also shows
   a banner and plays a short tone (Web Audio: browsers keep it silent until the user has
   used the page, hence the "sound on" button). The case view reloads itself when its
   intake changes, unless something is being typed (then it says so). No inline script
   or style: the pages run under a strict Content-Security-Policy. */
(function () {
  "use strict";
  var root = document.getElementById("review");
  if (!root) { return; }
  var view = root.getAttribute("data-view");
  var streamUrl = root.getAttribute("data-stream-url");
  var rowsUrl = root.getAttribute("data-rows-url");
  var stateUrl = root.getAttribute("data-state-url");
  var caseUrl = root.getAttribute("data-case-url");
  var intakeId = root.getAttribute("data-intake-id");
  var awaiting = root.getAttribute("data-awaiting") === "true";
  var lastEventId = root.getAttribute("data-after") || "";
  var liveOk = document.getElementById("live-ok");
  var liveLost = document.getElementById("live-lost");
  var list = document.getElementById("alert-list");
  var worklist = document.getElementById("worklist");
  var updated = document.getElementById("updated");
  var lastSeen = Date.now();
  var source = null;
  var refreshTimer = null;
  var dirty = false;
  var baseTitle = document.title;

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

  /* --- sound ---------------------------------------------------------------------------- */
  var soundButton = document.getElementById("sound-on");
  var soundNote = document.getElementById("sound-note");
  var soundReady = document.getElementById("sound-ready");
  var audio = null;

  function soundUi() {
    var on = !!audio && audio.state === "running";
    if (soundButton) { soundButton.hidden = on; }
    if (soundNote) { soundNote.hidden = on; }
    if (soundReady) { soundReady.hidden = !on; }
  }

  function ensureAudio() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) { return null; }
    if (!audio) {
      audio = new Ctx();
      audio.addEventListener("statechange", soundUi);
    }
    if (audio.state === "suspended") { audio.resume().then(soundUi, soundUi); }
    return audio;
  }

  function tone(repeats) {
    if (!audio || audio.state !== "running") { return false; }
    var start = audio.currentTime + 0.05;
    for (var i = 0; i < repeats; i += 1) {
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.value = i % 2 ? 660 : 880;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.3, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.25);
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start(start);
      osc.stop(start + 0.27);
      start += 0.32;
    }
    // Counted on the page, so a test (or a curious admin) can tell a tone was played.
    root.setAttribute("data-tones", String(parseInt(root.getAttribute("data-tones") || "0", 10) + 1));
    return true;
  }

  if (soundButton) {
    soundButton.addEventListener("click", function () {
      try { window.sessionStorage.setItem("review-sound", "on"); } catch (e) { /* private mode */ }
      var ctx = ensureAudio();
      if (ctx) { ctx.resume().then(function () { soundUi(); tone(1); }, soundUi); }
    });
  }
  // Once enabled in this tab, any use of a later page turns the sound back on.
  var wanted = false;
  try { wanted = window.sessionStorage.getItem("review-sound") === "on"; } catch (e) { /* */ }
  if (wanted) { ensureAudio(); soundUi(); }
  ["mousedown", "keydown", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function () {
      if (audio && audio.state === "suspended") { audio.resume().then(soundUi, soundUi); }
    }, { passive: true });
  });

  /* --- emergency banner ------------------------------------------------------------------ */
  function addAlert(data) {
    if (!list) { return; }
    if (list.querySelector("[data-intake-id='" + data.intake_id + "']")) { return; }
    var template = root.getAttribute("data-alert-template") || "{id} {time}";
    var li = document.createElement("li");
    li.className = "alert";
    li.setAttribute("data-intake-id", data.intake_id);
    var text = document.createElement("span");
    text.textContent = template.replace("{id}", data.business_id).replace("{time}", data.time);
    var actions = document.createElement("span");
    actions.className = "alert-actions";
    if (caseUrl) {
      var link = document.createElement("a");
      link.className = "button small primary";
      link.href = caseUrl.replace("INTAKE_ID", encodeURIComponent(data.intake_id));
      link.textContent = root.getAttribute("data-open-label") || "Open";
      actions.appendChild(link);
    }
    var dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "small";
    dismiss.setAttribute("data-dismiss", "");
    dismiss.textContent = root.getAttribute("data-dismiss-label") || "Dismiss";
    actions.appendChild(dismiss);
    li.appendChild(text);
    li.appendChild(actions);
    list.insertBefore(li, list.firstChild);
    document.title = "(!) " + baseTitle;
    tone(4);
  }

  if (list) {
    list.addEventListener("click", function (event) {
      var target = event.target;
      if (target && target.hasAttribute && target.hasAttribute("data-dismiss")) {
        var item = target.closest("li");
        if (item) { item.parentNode.removeChild(item); }
        if (!list.children.length) { document.title = baseTitle; }
      }
    });
  }

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
    var isResult = kind === "result" || kind === "alert";
    if ((awaiting && isResult) || !dirty) {
      reloadCase();
      return;
    }
    if (updated) { updated.hidden = false; }
  }

  /* --- the stream -------------------------------------------------------------------------- */
  function setLive(ok) {
    if (liveOk) { liveOk.hidden = !ok; }
    if (liveLost) { liveLost.hidden = ok; }
  }

  function seen(event) {
    lastSeen = Date.now();
    if (event && event.lastEventId) { lastEventId = event.lastEventId; }
    setLive(true);
  }

  function handle(kind, event) {
    seen(event);
    var data = {};
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (kind === "alert") { addAlert(data); }
    if (view === "worklist") {
      scheduleRefresh();
    } else if (view === "case" && data.intake_id === intakeId && kind !== "intake") {
      caseChanged(kind);
    }
  }

  function open() {
    var url = streamUrl + (streamUrl.indexOf("?") < 0 ? "?" : "&") + "after=" +
      encodeURIComponent(lastEventId);
    source = new EventSource(url);
    ["ping", "bye", "cursor"].forEach(function (name) { source.addEventListener(name, seen); });
    ["intake", "result", "alert", "delivery", "review"].forEach(function (name) {
      source.addEventListener(name, function (event) { handle(name, event); });
    });
    source.onerror = function () {
      if (source && source.readyState === EventSource.CLOSED) {
        source = null;
        checkSignedIn();
      }
    };
  }

  function checkSignedIn() {
    fetch(stateUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (!data.signed_in) { setLive(false); return; }  // staff.js leaves the page
        window.setTimeout(open, 1000);
      })
      .catch(function () { setLive(false); window.setTimeout(checkSignedIn, 2000); });
  }

  if (streamUrl && window.EventSource) {
    window.setInterval(function () {
      if (Date.now() - lastSeen > 25000) { setLive(false); }
    }, 2000);
    open();
  }
  if (view === "worklist") {
    // Times since arrival and anything the stream does not report.
    window.setInterval(refreshRows, 60000);
  }
})();
