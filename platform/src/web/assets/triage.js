// The report page's "Copy as issue": the Markdown summary onto the clipboard (or selected,
// where the browser allows no clipboard access).
"use strict";

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
