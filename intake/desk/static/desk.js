/* The desk page's table of recent intakes: reloaded when the live stream (live.js) says
   an intake changed, and every 30 seconds for the times since arrival. */
(function () {
  "use strict";
  var root = document.getElementById("desk");
  if (!root) { return; }
  var rowsUrl = root.getAttribute("data-rows-url");
  var tbody = document.getElementById("rows");
  var timer = null;

  function refreshRows() {
    timer = null;
    fetch(rowsUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (r.ok) { return r.text(); } throw new Error(String(r.status)); })
      .then(function (html) { tbody.innerHTML = html; root.setAttribute("data-refreshed", String(Date.now())); })
      .catch(function () { /* the next change or the periodic refresh tries again */ });
  }

  document.addEventListener("intake:changed", function () {
    if (!timer) { timer = window.setTimeout(refreshRows, 300); }
  });
  window.setInterval(refreshRows, 30000);
})();
