/* Request form: keep group and template choices to the chosen experiment, show the
   chosen template's parameters, and add sample lines without a round trip.
   Without this script the form still works: the "Add a sample line" button posts. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-request-form]");
  if (!form) return;
  var specsNode = document.getElementById("template-specs");
  var specs = specsNode ? JSON.parse(specsNode.textContent) : {};
  var experiment = form.querySelector("select[name='experiment']");

  function filterOptions(root) {
    if (!experiment) return;
    var slug = experiment.value;
    root.querySelectorAll("option[data-experiment]").forEach(function (option) {
      var tag = option.getAttribute("data-experiment");
      var show = !slug || tag === "" || tag === slug;
      option.hidden = !show;
      option.disabled = !show;
      if (!show && option.selected) option.closest("select").value = "";
    });
    root.querySelectorAll("optgroup").forEach(function (group) {
      group.hidden = !Array.prototype.some.call(group.children, function (o) { return !o.hidden; });
    });
  }

  function cell(row, tag, text, code) {
    var td = document.createElement(tag);
    if (code) {
      var c = document.createElement("code");
      c.textContent = text;
      td.appendChild(c);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
  }

  function note(box, text) {
    var p = document.createElement("p");
    p.className = "muted small";
    p.textContent = text;
    box.appendChild(p);
  }

  function showParameters(line) {
    var select = line.querySelector("select[name$='-template']");
    var box = line.querySelector("[data-param-help]");
    if (!select || !box) return;
    var rows = specs[select.value];
    box.textContent = "";
    if (!rows) return note(box, "Choose a template to see the parameters it accepts.");
    if (!rows.length) return note(box, "This template takes no parameters.");
    var table = document.createElement("table");
    table.className = "compact";
    var head = table.createTHead().insertRow();
    ["Parameter", "Type", "Default", "Allowed"].forEach(function (t) { cell(head, "th", t); });
    var body = table.createTBody();
    rows.forEach(function (p) {
      var tr = body.insertRow();
      cell(tr, "td", p.name, true);
      cell(tr, "td", p.type);
      cell(tr, "td", String(p["default"]), true);
      cell(tr, "td", p.limits || "\u2014");
    });
    box.appendChild(table);
  }

  form.addEventListener("change", function (event) {
    var target = event.target;
    if (target === experiment) filterOptions(form);
    if (target.matches("select[name$='-template']")) showParameters(target.closest("[data-sample-line]"));
  });

  var add = form.querySelector("[data-add-line]");
  var template = document.getElementById("sample-line-template");
  var total = form.querySelector("input[name='samples-TOTAL_FORMS']");
  var lines = form.querySelector("[data-sample-lines]");
  if (add && template && total && lines) {
    add.addEventListener("click", function (event) {
      event.preventDefault();
      var index = parseInt(total.value, 10) || 0;
      var fragment = template.content.cloneNode(true);
      fragment.querySelectorAll("*").forEach(function (node) {
        ["name", "id", "for", "aria-describedby"].forEach(function (attr) {
          var value = node.getAttribute(attr);
          if (value) node.setAttribute(attr, value.replace(/__prefix__/g, String(index)));
        });
      });
      var legend = fragment.querySelector("legend");
      if (legend) legend.textContent = "Sample line " + (lines.querySelectorAll("[data-sample-line]").length + 1);
      var line = fragment.querySelector("[data-sample-line]");
      lines.appendChild(fragment);
      total.value = String(index + 1);
      filterOptions(line);
      var first = line.querySelector("input, select, textarea");
      if (first) first.focus();
    });
  }

  filterOptions(form);
})();
