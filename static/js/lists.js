/* Request lists: on a phone the filters start folded (the requests come first); on a wide
   screen, or without scripts, they stay open. */
(function () {
  "use strict";
  if (!window.matchMedia("(max-width: 640px)").matches) return;
  document.querySelectorAll("details[data-closed-on-phone]").forEach(function (panel) {
    panel.open = false;
  });
})();
