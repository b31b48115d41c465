/* Triage queue: one checkbox to select every request on the page. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-bulk-form]");
  if (!form) return;
  var all = form.querySelector("[data-select-all]");
  if (!all) return;
  all.addEventListener("change", function () {
    form.querySelectorAll("input[name='ids']").forEach(function (box) { box.checked = all.checked; });
  });
})();
