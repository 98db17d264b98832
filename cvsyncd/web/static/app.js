// cvsyncd dashboard: refresh the parts of a page marked data-live every 2 seconds from
// /live (HTML rendered by the server, with the same templates as the page). The pages
// work without this script; it only saves a reload.
(function () {
  "use strict";
  var view = document.body.getAttribute("data-view");
  var url;
  if (view === "overview") {
    url = "/live?view=overview";
  } else if (view === "jobs" && document.body.hasAttribute("data-job")) {
    url = "/live?view=job&id=" + encodeURIComponent(document.body.getAttribute("data-job"));
  } else {
    return;
  }
  var busy = false;
  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body || !body.parts) { return; }
        Object.keys(body.parts).forEach(function (name) {
          var place = document.querySelector('[data-live="' + name + '"]');
          if (place && place.innerHTML !== body.parts[name]) { place.innerHTML = body.parts[name]; }
        });
      })
      .catch(function () { /* the daemon restarts, or the network is away: try again */ })
      .then(function () { busy = false; });
  }
  setInterval(refresh, 2000);
})();
