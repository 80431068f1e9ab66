// A button with data-confirm asks before it submits. A file, not an inline onclick: the
// Content-Security-Policy (script-src 'self') runs no inline script.
document.addEventListener("click", function (event) {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});
