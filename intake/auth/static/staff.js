// Staff pages: leave the page when the sign-in ends (idle time-out or lifetime), so
// patient data is not left on an unattended screen; warn shortly before; count keys,
// clicks, touches and scrolling as activity (reported with a keep-alive, at most once a
// minute, or more often when the idle time-out is short, and at once while warning).
(function () {
  "use strict";
  var body = document.body;
  var stateUrl = body.getAttribute("data-state-url");
  var signinUrl = body.getAttribute("data-signin-url");
  if (!stateUrl || !signinUrl) { return; }
  var warning = document.getElementById("idle-warning");
  var lastKeepalive = Date.now();  // loading this page was activity
  var keepaliveEvery = 60000;  // shortened once the idle time-out is known

  function leave() {
    var next = window.location.pathname + window.location.search;
    var sep = signinUrl.indexOf("?") >= 0 ? "&" : "?";
    window.location.replace(signinUrl + sep + "timed_out=1&next=" + encodeURIComponent(next));
  }

  function warnAt(s) {
    // 90 s before the end, or a third of a short idle time-out (so it is not always on).
    return Math.min(90, (s.idle_seconds || 900) / 3);
  }

  function check() {
    fetch(stateUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : { signed_in: false }; })
      .then(function (s) {
        if (!s.signed_in) { leave(); return; }
        if (s.idle_seconds) { keepaliveEvery = Math.min(60000, s.idle_seconds * 250); }
        if (warning) { warning.hidden = s.seconds_left > warnAt(s); }
        var wait = Math.max(2, Math.min(20, s.seconds_left - 1)) * 1000;
        window.setTimeout(check, wait);
      })
      .catch(function () { window.setTimeout(check, 10000); });
  }

  function activity() {
    var now = Date.now();
    var warned = warning && !warning.hidden;
    if (!warned && now - lastKeepalive < keepaliveEvery) { return; }
    lastKeepalive = now;
    fetch("/auth/keepalive", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : { signed_in: false }; })
      .then(function (s) {
        if (!s.signed_in) { leave(); return; }
        if (warning) { warning.hidden = true; }
      })
      .catch(function () { /* the next check will tell */ });
  }

  // The live stream (live.js) was ended because the sign-in ended: leave now.
  document.addEventListener("intake:signed-out", function () { check(); });
  ["keydown", "mousedown", "touchstart", "wheel"].forEach(function (ev) {
    document.addEventListener(ev, activity, { passive: true });
  });
  window.setTimeout(check, 5000);
})();
