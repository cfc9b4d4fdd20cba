// Staff pages: leave the page when the sign-in ends (idle time-out or lifetime), so
// patient data is not left on an unattended screen; warn a minute before; count keys,
// clicks and scrolling as activity (at most one keep-alive a minute).
(function () {
  "use strict";
  var body = document.body;
  var stateUrl = body.getAttribute("data-state-url");
  var signinUrl = body.getAttribute("data-signin-url");
  if (!stateUrl || !signinUrl) { return; }
  var warning = document.getElementById("idle-warning");
  var lastKeepalive = 0;

  function leave() {
    var next = window.location.pathname + window.location.search;
    var sep = signinUrl.indexOf("?") >= 0 ? "&" : "?";
    window.location.replace(signinUrl + sep + "timed_out=1&next=" + encodeURIComponent(next));
  }

  function check() {
    fetch(stateUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : { signed_in: false }; })
      .then(function (s) {
        if (!s.signed_in) { leave(); return; }
        if (warning) { warning.hidden = s.seconds_left > 90; }
        var wait = Math.max(2, Math.min(20, s.seconds_left - 1)) * 1000;
        window.setTimeout(check, wait);
      })
      .catch(function () { window.setTimeout(check, 10000); });
  }

  function activity() {
    var now = Date.now();
    if (now - lastKeepalive < 60000) { return; }
    lastKeepalive = now;
    fetch("/auth/keepalive", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : { signed_in: false }; })
      .then(function (s) {
        if (!s.signed_in) { leave(); return; }
        if (warning) { warning.hidden = true; }
      })
      .catch(function () { /* the next check will tell */ });
  }

  ["keydown", "mousedown", "touchstart", "wheel"].forEach(function (ev) {
    document.addEventListener(ev, activity, { passive: true });
  });
  lastKeepalive = Date.now();  // loading this page was activity
  window.setTimeout(check, 5000);
})();
