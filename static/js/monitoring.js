// Monitoring pages: refresh the live region in place, and print the status report.
// Our own small script (the CSP allows scripts from our origin only, none inline).
(function () {
  "use strict";

  function openDetails(root) {
    return Array.from(root.querySelectorAll("details[id]"))
      .filter(function (d) { return d.open; })
      .map(function (d) { return d.id; });
  }

  function restoreDetails(root, ids) {
    root.querySelectorAll("details[id]").forEach(function (d) {
      d.open = ids.indexOf(d.id) !== -1;
    });
  }

  function startRefresh(region) {
    var url = region.getAttribute("data-refresh-url");
    var seconds = parseInt(region.getAttribute("data-refresh-seconds"), 10) || 30;
    var status = document.querySelector("[data-refresh-status]");
    var busy = false;
    // Remember what the reader opened, so a refresh does not fold it away.
    var opened = null;

    function say(text) {
      if (status) { status.textContent = text; }
    }

    function refresh() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          if (response.redirected || !response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          opened = openDetails(region);
          var doc = new DOMParser().parseFromString(html, "text/html");
          region.replaceChildren.apply(region, Array.from(doc.body.childNodes));
          restoreDetails(region, opened);
          say("Updated " + new Date().toLocaleTimeString([], { hour12: false }) + " · refreshes every " + seconds + " s");
        })
        .catch(function () {
          say("Could not refresh (retrying in " + seconds + " s); the figures below may be stale.");
        })
        .finally(function () { busy = false; });
    }

    window.setInterval(refresh, seconds * 1000);
    // Catch up at once when the tab comes back into view.
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { refresh(); }
    });
  }

  document.querySelectorAll("[data-refresh-url]").forEach(startRefresh);
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
