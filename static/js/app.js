// Progressive enhancement only: every page works without this file.
document.documentElement.classList.add("js");

// After htmx swaps content in, move focus to it so keyboard and screen-reader users follow.
document.addEventListener("htmx:afterSwap", function (event) {
  var target = event.detail.target;
  if (!target || target.id === "messages") return;
  var focusable = target.matches("tr") ? target.querySelector("a, button") : null;
  if (focusable && document.activeElement === document.body) focusable.focus();
});

// A request that failed before reaching the server: say so where status messages live.
document.addEventListener("htmx:sendError", function () {
  var box = document.getElementById("messages");
  if (box) box.innerHTML = '<p class="flash flash-error" role="alert">The server could not be reached. Check your connection and try again.</p>';
});

// Signing on screen: draw in the box with a finger, stylus or mouse; the drawing goes into the
// hidden field named by data-signature as a PNG data URL.
function setUpSignature(canvas) {
  var field = document.getElementById(canvas.dataset.signature);
  if (!field || canvas.dataset.ready) return;
  canvas.dataset.ready = "1";
  var pen = canvas.getContext("2d");
  pen.lineWidth = 2.5;
  pen.lineCap = "round";
  pen.strokeStyle = "#1b2430";
  var drawing = false;
  var drew = false;  // a tap leaves no stroke: it is not a signature
  function point(event) {
    var box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * canvas.width / box.width,
            (event.clientY - box.top) * canvas.height / box.height];
  }
  canvas.addEventListener("pointerdown", function (event) {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    var p = point(event);
    pen.beginPath();
    pen.moveTo(p[0], p[1]);
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", function (event) {
    if (!drawing) return;
    var p = point(event);
    pen.lineTo(p[0], p[1]);
    pen.stroke();
    drew = true;
  });
  function finish() {
    if (!drawing) return;
    drawing = false;
    if (!drew) return;
    field.value = canvas.toDataURL("image/png");
    var method = canvas.closest("form").querySelector('input[name="consent_method"][value="electronic"]');
    if (method) method.checked = true;
  }
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  var clear = document.querySelector('[data-clear-signature="' + canvas.dataset.signature + '"]');
  if (clear) clear.addEventListener("click", function () {
    pen.clearRect(0, 0, canvas.width, canvas.height);
    field.value = "";
    drew = false;
  });
}
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("canvas[data-signature]").forEach(setUpSignature);
});
