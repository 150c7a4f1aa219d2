// The regroup page: drag a student's card to another group (or choose it in the card's Group list, which
// works from the keyboard too); the card moves to that column and the column means follow. Without this
// script the Group lists alone do the job: the form posts each student's chosen group.
(function () {
  "use strict";
  var columns = Array.prototype.slice.call(document.querySelectorAll(".group-column"));
  if (!columns.length) { return; }

  function column(name) {
    return columns.filter(function (c) { return c.dataset.group === name; })[0];
  }

  function refreshMeans() {
    columns.forEach(function (c) {
      var ps = Array.prototype.map.call(c.querySelectorAll(".card:not(.thin)"), function (card) {
        return card.dataset.p === "" ? null : Number(card.dataset.p);
      }).filter(function (p) { return p !== null; });
      var mean = c.querySelector(".col-mean");
      if (mean) { mean.textContent = ps.length ? (ps.reduce(function (a, b) { return a + b; }, 0) / ps.length).toFixed(2) : "–"; }
    });
  }

  function moveCard(card, name) {
    var target = column(name);
    if (!target) { return; }
    target.querySelector(".cards").appendChild(card);
    card.querySelector(".group-select").value = name;
    refreshMeans();
  }

  document.querySelectorAll(".card").forEach(function (card) {
    card.querySelector(".group-select").addEventListener("change", function (ev) {
      moveCard(card, ev.target.value);
      ev.target.focus();  // keyboard users keep their place on the moved card
    });
    card.addEventListener("dragstart", function (ev) {
      ev.dataTransfer.setData("text/plain", card.dataset.student);
      ev.dataTransfer.effectAllowed = "move";
    });
  });
  columns.forEach(function (c) {
    c.addEventListener("dragover", function (ev) { ev.preventDefault(); c.classList.add("drop"); });
    c.addEventListener("dragleave", function () { c.classList.remove("drop"); });
    c.addEventListener("drop", function (ev) {
      ev.preventDefault();
      c.classList.remove("drop");
      var student = ev.dataTransfer.getData("text/plain");
      var card = document.querySelector('.card[data-student="' + CSS.escape(student) + '"]');
      if (card) { moveCard(card, c.dataset.group); }
    });
  });
}());
