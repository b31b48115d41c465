/* Forms: a refused form's error summary takes the focus (a screen reader reads it, the
   page shows it); Enter in a one-line field presses the form's visible primary button
   (marked data-primary-action), as a click would, rather than a hidden default. */
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
  document.querySelectorAll("form").forEach(function (form) {
    var primary = form.querySelector("[data-primary-action]");
    if (!primary) return;
    form.addEventListener("keydown", function (event) {
      var target = event.target;
      if (event.key !== "Enter" || event.isComposing || !target.matches("input")) return;
      var type = (target.getAttribute("type") || "text").toLowerCase();
      if (["submit", "button", "checkbox", "radio", "reset", "file"].indexOf(type) !== -1) return;
      event.preventDefault();
      primary.click();
    });
  });
})();
