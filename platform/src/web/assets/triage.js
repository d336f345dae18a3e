// The report page's "Copy as issue": the Markdown summary onto the clipboard (or selected,
// where the browser allows no clipboard access). A refused save puts focus on its message.
"use strict";

// A "Saved." notice is for the save just made: reloading the page should not say it again.
if (/[?&]saved=/.test(location.search)) {
  history.replaceState(null, "", location.pathname);
}

(function () {
  const button = document.getElementById("copy-issue");
  if (!button) return;
  const text = document.getElementById("issue-markdown");
  const status = document.getElementById("copy-status");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text.value);
      status.textContent = "Copied.";
    } catch (e) {
      text.focus();
      text.select();
      const ok = document.execCommand && document.execCommand("copy");
      status.textContent = ok ? "Copied." : "Selected: press Ctrl+C to copy.";
    }
    status.dataset.copied = "1";
  });
})();

(function () {
  const error = document.getElementById("triage-error");
  if (error) {
    error.tabIndex = -1;
    error.focus();
  }
})();
