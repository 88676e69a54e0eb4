(function () {
  "use strict";
  var table = document.getElementById("devices");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var count = document.getElementById("shown");
  var controls = {
    verdict: document.getElementById("f-verdict"),
    kind: document.getElementById("f-kind"),
    code: document.getElementById("f-code"),
    text: document.getElementById("f-text")
  };

  function filter() {
    var verdict = controls.verdict.value, kind = controls.kind.value;
    var code = controls.code.value, text = controls.text.value.trim().toLowerCase();
    var shown = 0;
    rows.forEach(function (row) {
      var d = row.dataset;
      var keep = (!verdict || d.verdict === verdict) && (!kind || d.kind === kind) &&
        (!code || (" " + d.codes + " ").indexOf(" " + code + " ") >= 0) &&
        (!text || d.search.indexOf(text) >= 0);
      row.classList.toggle("hidden", !keep);
      if (keep) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length;
  }

  function sortBy(header, column) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var keyed = rows.map(function (row, index) {
      var cell = row.cells[column];
      return [cell.dataset.key || cell.textContent.trim().toLowerCase(), index, row];
    });
    keyed.sort(function (a, b) {
      var order = a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
      return ascending ? order : -order;
    });
    rows = keyed.map(function (item) { return item[2]; });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
    header.classList.add("sort");
    header.addEventListener("click", function () { sortBy(header, column); });
  });
  Object.keys(controls).forEach(function (name) {
    controls[name].addEventListener("input", filter);
    controls[name].addEventListener("change", filter);
  });

  function openTarget() {
    var target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") { target.open = true; }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
  filter();
}());
