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
