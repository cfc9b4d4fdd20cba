/* The live alert list, shared by the front-desk board, the desk page and the
   practitioners' pages. One stream (server-sent events from the live process) per page:

   - "state": every alert a screen shows, whole. The list is redrawn from it, so a page
     that was disconnected shows exactly what the database holds once it is back;
   - "changed": intakes whose data changed (the page reloads its table: an
     "intake:changed" DOM event);
   - "ping": the heartbeat. No message for three heartbeats, or a stream that does not
     come back, is shown in red and sounded: a dead screen must never look quiet;
   - "bye": the stream was ended (a revoked board, an ended sign-in).

   Sound (Web Audio): an unanswered emergency repeats an alarm until someone answers it
   (対応中 or 確認済, on any screen); an escalated one (unanswered too long) is louder and
   faster; a new same-day patient chimes once; a lost connection beeps low. Browsers keep
   a page silent until it is touched once, hence the "start with sound" step, which the
   board asks for before anything else. No inline script or style (strict CSP). */
(function () {
  "use strict";
  var root = document.getElementById("live");
  if (!root || !window.EventSource) { return; }
  var L = JSON.parse(root.getAttribute("data-labels") || "{}");
  var T = L.t || {};
  var mode = root.getAttribute("data-mode");  // "board" or "staff"
  var compact = root.hasAttribute("data-compact");  // the worklist and case view
  var via = root.getAttribute("data-via");    // "board", "desk" or "review"
  var streamUrl = root.getAttribute("data-stream");
  var answerUrl = root.getAttribute("data-answer-url");
  var caseUrl = root.getAttribute("data-case-url");
  var staffUrl = root.getAttribute("data-staff-url");
  var csrf = root.getAttribute("data-csrf");
  var heartbeat = parseFloat(root.getAttribute("data-heartbeat") || "5") * 1000;
  var list = document.getElementById("alert-list");
  var empty = document.getElementById("alerts-empty");
  var more = document.getElementById("alerts-more");
  var liveOk = document.getElementById("live-ok");
  var liveLost = document.getElementById("live-lost");
  var revoked = document.getElementById("live-revoked");
  var soundGate = document.getElementById("sound-gate");
  var soundOff = document.getElementById("sound-off");
  var who = document.getElementById("who");
  var whoNames = document.getElementById("who-names");
  var message = document.getElementById("alerts-message");
  var baseTitle = document.title;

  function fmt(key, values) {
    var text = T[key] || key;
    Object.keys(values || {}).forEach(function (k) {
      text = text.split("{" + k + "}").join(values[k]);
    });
    return text;
  }

  /* --- sound ------------------------------------------------------------------------ */
  var audio = null;
  var alarmLevel = 0;      // 0 quiet, 1 unanswered emergency, 2 escalated
  var nextAlarm = 0;
  var lost = false;
  var nextLostTone = 0;

  function soundUi() {
    var running = !!audio && audio.state === "running";
    if (soundGate) { soundGate.hidden = running; }
    // (The on/off notes swap by style, in one place: see live.css.)
    root.setAttribute("data-sound", running ? "on" : "off");
    // An emergency nobody hears: the "no sound" note becomes a loud call to tap.
    var silent = !running && alarmLevel > 0;
    root.setAttribute("data-silent-alarm", silent ? "true" : "false");
    if (soundOff) { soundOff.textContent = silent ? T.sound_off_alarm : T.sound_off; }
    var gateButton = soundGate ? soundGate.querySelector("button") : null;
    if (gateButton) { gateButton.textContent = silent ? T.sound_off_alarm : T.sound_start; }
  }

  function startAudio() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) { return; }
    if (!audio) {
      audio = new Ctx();
      audio.addEventListener("statechange", soundUi);
    }
    if (audio.state !== "running") { audio.resume().then(soundUi, soundUi); }
    soundUi();
  }

  function play(kind) {
    // kind: "alarm", "escalated", "chime", "lost", "test"
    if (!audio || audio.state !== "running") { return false; }
    var shapes = {
      alarm: { freqs: [880, 660, 880], gain: 0.35, len: 0.22, type: "square" },
      escalated: { freqs: [988, 740, 988, 740, 988], gain: 0.9, len: 0.16, type: "sawtooth" },
      chime: { freqs: [660, 880], gain: 0.2, len: 0.3, type: "sine" },
      lost: { freqs: [220, 196], gain: 0.5, len: 0.4, type: "triangle" },
      test: { freqs: [660], gain: 0.2, len: 0.2, type: "sine" }
    };
    var s = shapes[kind];
    var start = audio.currentTime + 0.03;
    s.freqs.forEach(function (f) {
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.type = s.type;
      osc.frequency.value = f;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(s.gain, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + s.len);
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start(start);
      osc.stop(start + s.len + 0.02);
      start += s.len + 0.06;
    });
    // Counted on the page, so staff (and tests) can see that a sound was made.
    root.setAttribute("data-tones-" + kind,
      String(parseInt(root.getAttribute("data-tones-" + kind) || "0", 10) + 1));
    return true;
  }

  function soundTick() {
    var now = Date.now();
    if (lost && now >= nextLostTone) { play("lost"); nextLostTone = now + 5000; }
    // An emergency last seen unanswered keeps sounding while cut off too.
    if (alarmLevel > 0 && now >= nextAlarm) {
      play(alarmLevel === 2 ? "escalated" : "alarm");
      nextAlarm = now + (alarmLevel === 2 ? 2000 : 4000);
    }
  }

  if (soundGate) {
    soundGate.addEventListener("click", function (event) {
      if (event.target.closest("button")) { startAudio(); play("test"); }
    });
  }
  if (soundOff) { soundOff.addEventListener("click", function () { startAudio(); }); }
  // On a staff page any use of the page turns the sound on (the browser allows it from
  // then); a board asks for it first, explicitly, so nobody leaves it silent.
  ["mousedown", "keydown", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function () {
      if (mode !== "board" || audio) { startAudio(); }
    }, { passive: true });
  });

  /* --- the list ---------------------------------------------------------------------- */
  var known = {};          // alert id -> true, to tell which ones are new
  var first = true;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function patientText(p) {
    if (p && p.record) { return fmt("patient_record", { number: p.record }); }
    if (p && p.name) {
      return p.kana ? fmt("patient_walk_in", { name: p.name, kana: p.kana }) : p.name;
    }
    return T.patient_none;
  }

  function viaText(w) {
    if (w.via === "board") { return fmt("via_board", { name: w.via_name }); }
    return T["via_" + w.via] || w.via;
  }

  function answeredText(state, w) {
    return fmt("answered_by", { state: T["state_" + state], by: w.by, via: viaText(w),
                                time: w.time });
  }

  function card(a) {
    var li = el("li", "alert-card level-" + a.level + " state-" + a.state +
                (a.escalated ? " escalated" : ""));
    li.setAttribute("data-alert-id", String(a.id));
    li.setAttribute("data-state", a.state);
    if (a.escalated) { li.setAttribute("data-escalated", "true"); }
    var head = el("div", "alert-head");
    // What to do while nobody is on it; once answered, only the level.
    head.appendChild(el("span", "alert-level",
      a.state === "open" ? T["level_" + a.level] : T["section_" + a.level]));
    head.appendChild(el("span", "alert-state badge state-" + a.state, T["state_" + a.state]));
    if (a.escalated) {
      head.appendChild(el("span", "alert-escalated",
        fmt("escalated", { m: String(Math.max(1, Math.round(L.escalateAfter / 60))) })));
    }
    li.appendChild(head);
    li.appendChild(el("p", "alert-patient", patientText(a.patient)));
    var facts = el("p", "alert-facts");
    facts.appendChild(el("span", "alert-time", fmt("received_at", { time: a.time })));
    var where = a.tablet ? fmt("tablet", { name: a.tablet }) : (L.sources[a.source] || a.source);
    facts.appendChild(el("span", "alert-where", where));
    if (a.tablet && a.source !== "kiosk" && L.sources[a.source]) {
      // Not sent by the patient (left, stopped, interrupted): staff must find them.
      facts.appendChild(el("span", "alert-unfinished", L.sources[a.source]));
    }
    li.appendChild(facts);
    var reasons = el("ul", "alert-reasons");
    a.reasons.forEach(function (r) {
      var text = L.reasons[r] || r;
      reasons.appendChild(el("li", "reason", text.charAt(0).toUpperCase() + text.slice(1)));
    });
    li.appendChild(reasons);
    if (a.in_progress) { li.appendChild(el("p", "alert-who", answeredText("in_progress", a.in_progress))); }
    if (a.done) { li.appendChild(el("p", "alert-who", answeredText("done", a.done))); }
    var actions = el("div", "alert-actions");
    if (a.state === "open") {
      actions.appendChild(answerButton(a, "in_progress", "primary"));
    }
    if (a.state !== "done") {
      actions.appendChild(answerButton(a, "done", a.state === "open" ? "" : "primary"));
    }
    if (caseUrl && a.intake_id) {
      var link = el("a", "button", T.open_case);
      link.href = caseUrl.replace("INTAKE_ID", encodeURIComponent(a.intake_id));
      actions.appendChild(link);
    }
    if (actions.children.length) { li.appendChild(actions); }
    return li;
  }

  function answerButton(a, state, cls) {
    var b = el("button", cls, T["answer_" + state]);
    b.type = "button";
    b.setAttribute("data-answer", state);
    b.setAttribute("data-alert", String(a.id));
    return b;
  }

  function render(data) {
    var alerts = data.alerts || [];
    L.escalateAfter = data.escalate_after || 120;
    var fresh = [];
    var level = 0;
    alerts.forEach(function (a) {
      if (!known[a.id]) { fresh.push(a); known[a.id] = true; }
      if (a.level === "emergency" && a.state === "open") {
        level = Math.max(level, a.escalated ? 2 : 1);
      }
    });
    while (list.firstChild) { list.removeChild(list.firstChild); }
    var sections = { emergency: [], same_day: [], done: [] };
    alerts.forEach(function (a) {
      (a.state === "done" ? sections.done : sections[a.level] || sections.same_day).push(a);
    });
    ["emergency", "same_day", "done"].forEach(function (name) {
      if (!sections[name].length) { return; }
      if (name === "done" && compact) { return; }  // a doctor's page: what is still open
      var group = el("li", "alert-group group-" + name);
      group.appendChild(el("h2", "", name === "done" ? T.state_done : T["section_" + name]));
      var ul = el("ul", "alert-cards");
      sections[name].forEach(function (a) { ul.appendChild(card(a)); });
      group.appendChild(ul);
      list.appendChild(group);
    });
    if (empty) { empty.hidden = alerts.length > 0; }
    var boardsWarning = document.getElementById("boards-warning");
    if (boardsWarning && data.boards) {
      // Boards are enrolled but none is on: alerts reach only signed-in screens now.
      boardsWarning.hidden = !(data.boards.enrolled > 0 && data.boards.connected === 0);
    }
    if (more) {
      more.hidden = !data.more;
      more.textContent = data.more ? fmt("more_alerts", { n: String(data.more) }) : "";
    }
    var waiting = alerts.filter(function (a) { return a.state === "open"; }).length;
    document.title = (waiting ? "(" + waiting + ") " : "") + baseTitle;
    root.setAttribute("data-alarm-level", String(level));
    root.setAttribute("data-open", String(waiting));
    var raised = level > alarmLevel;
    alarmLevel = level;
    soundUi();
    if (pending && !alerts.some(function (a) { return String(a.id) === pending.id; })) {
      closeWho();  // the alert being answered is gone from the list
    }
    if (!first) {
      var newEmergency = fresh.some(function (a) { return a.level === "emergency" && a.state === "open"; });
      if (newEmergency && pending) { closeWho(); }  // look at the new emergency first
      if (newEmergency || raised) { nextAlarm = 0; }  // sound now, not at the next beat
      else if (fresh.some(function (a) { return a.level === "same_day" && a.state === "open"; })) {
        play("chime");
      }
    } else if (level > 0) {
      nextAlarm = 0;
    }
    first = false;
    soundTick();
  }

  /* --- answering ---------------------------------------------------------------------- */
  var pending = null;  // {id, state} waiting for a name on a board

  function say(text) {
    if (!message) { return; }
    message.textContent = text || "";
    message.hidden = !text;
  }

  function post(alertId, state, name) {
    var body = new FormData();
    body.append("csrf_token", csrf);
    body.append("state", state);
    body.append("via", via);
    if (name) { body.append("name", name); }
    return fetch(answerUrl.replace("ALERT_ID", String(alertId)), {
      method: "POST", body: body, credentials: "same-origin", cache: "no-store"
    });
  }

  function send(alertId, state, name) {
    return post(alertId, state, name).then(function (r) {
      if (r.status !== 400) { return r; }
      // A page open all day outlives its form token (a sign-in on this PC starts a new
      // one): fetch a fresh one and try once more.
      return fetch("/alerts/token", { credentials: "same-origin", cache: "no-store" })
        .then(function (t) { return t.json(); })
        .then(function (data) { csrf = data.csrf_token; return post(alertId, state, name); });
    }).then(function (r) {
      if (r.status === 409) { say(T.answer_conflict); return; }
      if (!r.ok) { throw new Error(String(r.status)); }
      say("");
    }).catch(function () { say(T.answer_failed); });
  }

  function askWho(alertId, state, card) {
    pending = { id: alertId, state: state };
    var whatFor = document.getElementById("who-for");
    if (whatFor) {
      // Which patient and which answer: the list may change while the dialog is open.
      var patient = card ? card.querySelector(".alert-patient") : null;
      whatFor.textContent = T["answer_" + state] + ": " + (patient ? patient.textContent : "");
    }
    fetch(staffUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) {
        while (whoNames.firstChild) { whoNames.removeChild(whoNames.firstChild); }
        data.names.forEach(function (n) {
          var b = el("button", "who-name", n);
          b.type = "button";
          b.setAttribute("data-name", n);
          whoNames.appendChild(b);
        });
        if (typeof who.showModal === "function") { who.showModal(); } else { who.hidden = false; }
      })
      .catch(function () { say(T.answer_failed); });
  }

  function closeWho() {
    pending = null;
    if (!who) { return; }
    if (typeof who.close === "function" && who.open) { who.close(); } else { who.hidden = true; }
  }

  list.addEventListener("click", function (event) {
    startAudio();
    var b = event.target.closest("button[data-answer]");
    if (!b) { return; }
    var id = b.getAttribute("data-alert");
    var state = b.getAttribute("data-answer");
    var card = b.closest(".alert-card");
    if (mode === "board") { askWho(id, state, card); return; }
    // Done stops the alarm on every screen: one more yes for an alert nobody is on.
    if (state === "done" && card && card.getAttribute("data-state") === "open" &&
        !window.confirm(T.confirm_done)) { return; }
    send(id, state);
  });

  if (who) {
    who.addEventListener("click", function (event) {
      var b = event.target.closest("button");
      if (!b) { return; }
      if (b.hasAttribute("data-name") && pending) {
        var p = pending;
        closeWho();
        send(p.id, p.state, b.getAttribute("data-name"));
      } else if (b.hasAttribute("data-cancel")) {
        closeWho();
      }
    });
  }

  /* --- the stream --------------------------------------------------------------------- */
  var source = null;
  var lastMessage = Date.now();
  var lastEventId = "";
  var lastClock = "";
  var stopped = false;
  var reopenTimer = null;

  function setLost(value) {
    if (value && !lost) {
      nextLostTone = 0;
      var since = document.getElementById("live-lost-since");
      if (since) { since.textContent = lastClock ? fmt("lost_since", { time: lastClock }) : ""; }
    }
    lost = value;
    if (liveOk) { liveOk.hidden = value || stopped; }
    if (liveLost) { liveLost.hidden = !value || stopped; }
    root.setAttribute("data-live", value ? "lost" : "ok");
  }

  function heard(event) {
    lastMessage = Date.now();
    if (event && event.lastEventId) { lastEventId = event.lastEventId; }
    if (lost) { setLost(false); }
    var clock = null;
    try { clock = event && event.data ? JSON.parse(event.data).clock : null; } catch (e) { /* */ }
    if (clock) { lastClock = clock; }
    var checked = document.getElementById("live-checked");
    if (checked && clock) {
      // The server's time in the clinic's zone: the last moment this screen was known live.
      checked.textContent = fmt("live_checked", { time: clock });
    }
  }

  function showRevoked() {
    stopped = true;
    if (source) { source.close(); }
    if (reopenTimer) { window.clearTimeout(reopenTimer); reopenTimer = null; }
    while (list.firstChild) { list.removeChild(list.firstChild); }
    alarmLevel = 0;
    lost = false;
    if (revoked) { revoked.hidden = false; }
    if (liveOk) { liveOk.hidden = true; }
    if (liveLost) { liveLost.hidden = true; }
    if (empty) { empty.hidden = true; }
    root.setAttribute("data-live", "revoked");
  }

  function showReplaced() {
    // This page's place was taken by a newer page of the same board or sign-in: it
    // stops, silent, and says so (reloading it takes the place back).
    stopped = true;
    if (source) { source.close(); }
    alarmLevel = 0;
    lost = false;
    var replaced = document.getElementById("live-replaced");
    if (replaced) { replaced.hidden = false; }
    if (liveOk) { liveOk.hidden = true; }
    if (liveLost) { liveLost.hidden = true; }
    root.setAttribute("data-live", "replaced");
  }

  function open() {
    if (stopped) { return; }
    if (source) { source.close(); }
    reopenTimer = null;
    // The browser sends Last-Event-ID itself when it reconnects; a reopening made here
    // carries it in the URL so a staff page still learns what it missed.
    var since = root.getAttribute("data-since");
    var cursor = root.getAttribute("data-cursor");
    var query = lastEventId ? "last=" + encodeURIComponent(lastEventId)
      : (since ? "since=" + encodeURIComponent(since) +
         (cursor ? "&cursor=" + encodeURIComponent(cursor) : "") : "");
    var url = streamUrl + (query ? (streamUrl.indexOf("?") < 0 ? "?" : "&") + query : "");
    source = new EventSource(url);
    // (An open connection alone proves nothing: only a state or a heartbeat says the
    // alerts reach this screen.)
    source.addEventListener("ping", heard);
    source.addEventListener("state", function (event) {
      heard(event);
      render(JSON.parse(event.data));
    });
    source.addEventListener("changed", function (event) {
      heard(event);
      document.dispatchEvent(new CustomEvent("intake:changed", { detail: JSON.parse(event.data) }));
    });
    source.addEventListener("bye", function (event) {
      var reason = "";
      try { reason = JSON.parse(event.data).reason; } catch (e) { /* */ }
      if (reason === "revoked") {
        showRevoked();
      } else if (reason === "replaced") {
        showReplaced();
      } else if (reason === "signed_out") {
        // The page leaves if the sign-in has really ended (staff.js); if not (signed in
        // again meanwhile), the stream comes back. Until then: cut off, and said so.
        source.close();
        setLost(true);
        document.dispatchEvent(new CustomEvent("intake:signed-out"));
        if (!reopenTimer) { reopenTimer = window.setTimeout(open, 2000); }
      }
    });
    source.onerror = function () {
      if (source && source.readyState === EventSource.CLOSED && !stopped && !reopenTimer) {
        reopenTimer = window.setTimeout(open, 2000);
        if (mode === "board" && staffUrl) {
          // Refused, not dropped? A board whose registration was revoked says so.
          fetch(staffUrl, { credentials: "same-origin", cache: "no-store" })
            .then(function (r) { if (r.status === 401) { showRevoked(); } })
            .catch(function () { /* the server is away: the lost banner says so */ });
        }
      }
    };
  }

  window.setInterval(function () {
    if (stopped) { return; }
    var silent = Date.now() - lastMessage;
    // Three heartbeats without a word: the stream is dead even if the socket says not.
    if (silent > 3 * heartbeat + 1000) {
      if (!lost) { setLost(true); }
      if (silent > 3 * heartbeat + 1000 && !reopenTimer &&
          (!source || source.readyState !== EventSource.CONNECTING)) {
        open();
      }
    } else if (source && source.readyState !== EventSource.OPEN && silent > 3000) {
      setLost(true);
    }
    soundTick();
  }, 1000);

  document.addEventListener("intake:state-check", function () { soundUi(); });
  soundUi();
  setLost(false);
  open();
})();
