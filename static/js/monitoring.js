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

  // A keyboard reader's focus survives a refresh: the same control (same kind, same link
  // or name, same rank among its likes) gets it back in the new content.
  function focusKey(region) {
    var el = document.activeElement;
    if (!el || el === document.body || !region.contains(el)) { return null; }
    if (el.id) { return { selector: "#" + CSS.escape(el.id), index: 0 }; }
    var selector = el.tagName.toLowerCase();
    var attr = el.getAttribute("href") !== null ? "href" : (el.getAttribute("name") !== null ? "name" : null);
    if (attr) { selector += "[" + attr + '="' + CSS.escape(el.getAttribute(attr)) + '"]'; }
    // Ranked among its likes with the same text too: another link to the same place (a
    // badge that comes and goes with a status) must not shift it onto its neighbour.
    var text = el.textContent.trim();
    return { selector: selector, text: text, index: alike(region, selector, text).indexOf(el) };
  }

  function alike(region, selector, text) {
    return Array.prototype.filter.call(region.querySelectorAll(selector), function (el) {
      return el.textContent.trim() === text;
    });
  }

  function restoreFocus(region, key) {
    if (!key || key.index < 0) { return; }
    var el = alike(region, key.selector, key.text)[key.index];
    if (el) { el.focus({ preventScroll: true }); }
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
          var focused = focusKey(region);
          var doc = new DOMParser().parseFromString(html, "text/html");
          region.replaceChildren.apply(region, Array.from(doc.body.childNodes));
          if (window.opos && window.opos.tagScrollBoxes) { window.opos.tagScrollBoxes(); }
          restoreDetails(region, opened);
          restoreFocus(region, focused);
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
