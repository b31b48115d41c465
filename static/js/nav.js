/* Site menu: on a narrow screen it folds behind the Menu button (aria-expanded says which);
   on a wide one the button stays hidden by the stylesheet and the menu shows. */
(function () {
  "use strict";
  var button = document.querySelector(".nav-toggle");
  var menu = document.getElementById("site-menu");
  if (!button || !menu) return;
  document.documentElement.classList.add("nav-folds");
  button.hidden = false;
  button.addEventListener("click", function () {
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    menu.classList.toggle("open", open);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && menu.classList.contains("open")) {
      button.setAttribute("aria-expanded", "false");
      menu.classList.remove("open");
      button.focus();
    }
  });
})();

/* Wide tables scroll sideways in their .table-wrap box: a box that scrolls can be reached
   and scrolled from the keyboard (focusable, named as a region); one that fits is not a
   needless tab stop. Checked again when the window changes size. */
(function () {
  "use strict";
  function label(box) {
    var section = box.closest("section");
    var heading = section && section.querySelector("h2, h3");
    var caption = box.querySelector("caption");
    var text = (caption || heading || {}).textContent || "Table";
    return text.trim() + " (scrolls sideways)";
  }
  function tag() {
    document.querySelectorAll(".table-wrap").forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      if (scrolls && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", label(box));
        box.setAttribute("data-tagged", "");
      } else if (!scrolls && box.hasAttribute("data-tagged")) {
        ["tabindex", "role", "aria-label", "data-tagged"].forEach(function (a) {
          box.removeAttribute(a);
        });
      }
    });
  }
  var pending = false;
  function later() {  // once per frame, however many changes came
    if (pending) return;
    pending = true;
    window.requestAnimationFrame(function () { pending = false; tag(); });
  }
  tag();
  // Dashboards call it right after they replace a part, in the same task: no reader (nor
  // checker) ever meets a new scrolling box that the keyboard cannot reach.
  window.opos = window.opos || {};
  window.opos.tagScrollBoxes = tag;
  window.addEventListener("resize", tag);
  // Dashboards replace their parts in place, and details open: check the new boxes too.
  document.addEventListener("toggle", later, true);
  if (window.MutationObserver) {
    new MutationObserver(later).observe(document.body, { childList: true, subtree: true });
  }
})();
