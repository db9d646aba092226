// Drag a deal card onto another column: posts the card's own stage-menu form.
// Without this file the stage menu on every card does the same.
"use strict";
(function () {
  var dragged = null;
  document.addEventListener("dragstart", function (event) {
    var card = event.target instanceof Element ? event.target.closest(".board-card") : null;
    if (!card) { return; }
    dragged = card;
    card.classList.add("dragging");
    if (event.dataTransfer) {
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.getAttribute("data-deal-id") || "");
    }
  });
  document.addEventListener("dragend", function () {
    if (dragged) { dragged.classList.remove("dragging"); }
    dragged = null;
    document.querySelectorAll(".board-column.drop-target").forEach(function (column) {
      column.classList.remove("drop-target");
    });
  });
  document.addEventListener("dragover", function (event) {
    var column = event.target instanceof Element ? event.target.closest(".board-column") : null;
    if (!column || !dragged) { return; }
    event.preventDefault();
    column.classList.add("drop-target");
  });
  document.addEventListener("dragleave", function (event) {
    var column = event.target instanceof Element ? event.target.closest(".board-column") : null;
    if (column && !column.contains(event.relatedTarget)) { column.classList.remove("drop-target"); }
  });
  document.addEventListener("drop", function (event) {
    var column = event.target instanceof Element ? event.target.closest(".board-column") : null;
    if (!column || !dragged) { return; }
    event.preventDefault();
    var form = dragged.querySelector("form.move-form");
    var select = form ? form.querySelector("select[name=stage_id]") : null;
    var stageId = column.getAttribute("data-stage-id");
    if (!form || !select || !stageId || select.value === stageId) { return; }
    select.value = stageId;
    form.submit();
  });
})();
