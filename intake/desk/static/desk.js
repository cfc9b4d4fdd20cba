/* The desk page's live alerts. The stream is bounded by the server and reopened here;
   Last-Event-ID makes each reopening continue exactly where the last one stopped. If no
   event (not even the heartbeat) arrives for a while, or the sign-in has ended, the page
   says so in red: a silent alert screen is worse than none. */
(function () {
  "use strict";
  var root = document.getElementById("desk");
  if (!root || !window.EventSource) { return; }
  var streamUrl = root.getAttribute("data-stream-url");
  var rowsUrl = root.getAttribute("data-rows-url");
  var stateUrl = root.getAttribute("data-state-url");
  var template = root.getAttribute("data-alert-template");
  var dismissText = root.getAttribute("data-dismiss");
  var liveOk = document.getElementById("live-ok");
  var liveLost = document.getElementById("live-lost");
  var signedOut = document.getElementById("signed-out");
  var list = document.getElementById("alert-list");
  var noAlerts = document.getElementById("no-alerts");
  var tbody = document.getElementById("rows");
  var lastEventId = root.getAttribute("data-after");
  var lastSeen = Date.now();
  var source = null;
  var baseTitle = document.title;

  function setLive(ok) {
    liveOk.hidden = !ok;
    liveLost.hidden = ok || !signedOut.hidden;
  }

  function refreshRows() {
    fetch(rowsUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (r.ok) { return r.text(); } throw new Error(r.status); })
      .then(function (html) { tbody.innerHTML = html; })
      .catch(function () {});
  }

  function addAlert(data) {
    var existing = list.querySelector("[data-business-id='" + data.business_id + "']");
    if (existing) { return; }
    var li = document.createElement("li");
    li.className = "alert";
    li.setAttribute("data-business-id", data.business_id);
    var span = document.createElement("span");
    span.textContent = template.replace("{id}", data.business_id).replace("{time}", data.time);
    var button = document.createElement("button");
    button.type = "button";
    button.className = "small";
    button.setAttribute("data-dismiss", "");
    button.textContent = dismissText;
    li.appendChild(span);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(button);
    list.insertBefore(li, list.firstChild);
    noAlerts.hidden = true;
    document.title = "(!) " + baseTitle;
  }

  list.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.hasAttribute("data-dismiss")) {
      target.parentNode.parentNode.removeChild(target.parentNode);
      if (!list.children.length) { noAlerts.hidden = false; document.title = baseTitle; }
    }
  });

  function seen(event) {
    lastSeen = Date.now();
    if (event && event.lastEventId) { lastEventId = event.lastEventId; }
    setLive(true);
  }

  function open() {
    var url = streamUrl + (streamUrl.indexOf("?") < 0 ? "?" : "&") + "after=" +
      encodeURIComponent(lastEventId);
    source = new EventSource(url);
    source.addEventListener("ping", seen);
    source.addEventListener("bye", seen);
    source.addEventListener("update", function (event) { seen(event); refreshRows(); });
    source.addEventListener("alert", function (event) {
      seen(event);
      addAlert(JSON.parse(event.data));
      refreshRows();
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        checkSignedIn();
      }
    };
  }

  function checkSignedIn() {
    fetch(stateUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        // 401: the sign-in has ended (staff.js also leaves for the sign-in page).
        if (r.status === 401 || r.status === 403) { return { signed_in: false }; }
        if (!r.ok) { throw new Error(String(r.status)); }
        return r.json();
      })
      .then(function (data) {
        if (!data.signed_in) {
          signedOut.hidden = false;
          setLive(false);
          liveLost.hidden = true;
          return;
        }
        setTimeout(open, 1000);
      })
      .catch(function () { setLive(false); setTimeout(checkSignedIn, 2000); });
  }

  setInterval(function () {
    if (Date.now() - lastSeen > 25000) { setLive(false); }
  }, 2000);
  setInterval(refreshRows, 30000);
  open();
})();
