// The Feedback dialog of every page: category, optional rating, message, optional contact.
// It attaches, without asking, what the lesson page knows (window.antidote.context): the
// livelesson, its endpoints and instances, the last request and trace IDs, recent client
// errors. A report that could not be sent keeps its text so the learner can send it again;
// the resend carries the same submission_id, so a report whose answer was lost is stored once.
"use strict";

(function () {
  const dialog = document.getElementById("feedback");
  if (!dialog) return;
  const form = document.getElementById("feedback-form");
  const status = document.getElementById("feedback-status");
  const send = document.getElementById("feedback-send");
  const field = (id) => document.getElementById(id);

  function open() {
    status.textContent = "";
    status.className = "";
    // Without a lab on the page, neither the default nor the hint should speak of one.
    const a = window.antidote || {};
    const hasLab = !!(a.context && a.context.livelesson);
    if (!hasLab && !pending && field("feedback-category").value === "lab_not_working") {
      field("feedback-category").value = "other";
    }
    field("feedback-hint").textContent = hasLab
      ? "We attach this page's lab, its endpoints and recent errors, so you need not describe them."
      : "We attach this page's address and recent errors, so you need not describe them.";
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    field("feedback-message").focus();
  }
  field("feedback-open").addEventListener("click", open);
  // "Report this" buttons appear later (a failed lab's screen).
  document.addEventListener("click", (e) => {
    if (e.target && e.target.matches && e.target.matches(".feedback-open-here")) open();
  });
  field("feedback-cancel").addEventListener("click", () => dialog.close());

  function context() {
    const a = window.antidote || {};
    const c = a.context || {};
    const ll = c.livelesson || null;
    return {
      livelesson: ll ? { id: ll.id, status: ll.status, stage: ll.stage, error: ll.error } : null,
      endpoints: ll ? ll.endpoints.map((e) => ({ name: e.name, instance: e.instance, state: e.state })) : [],
      requestIds: (c.requestIds || []).slice(-10),
      traceIds: (c.traceIds || []).slice(-10),
      errors: (c.errors || []).slice(-10),
    };
  }

  // The key of the report being sent: kept while its text and category stay the same.
  let pending = null;
  function submissionId(key) {
    if (!pending || pending.key !== key) {
      const bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      pending = { key, id: Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") };
    }
    return pending.id;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const a = window.antidote || {};
    const c = a.context || {};
    const ll = c.livelesson || null;
    const rating = field("feedback-rating").value;
    const body = {
      category: field("feedback-category").value,
      message: field("feedback-message").value,
      page_url: location.href,
      context: context(),
    };
    body.submission_id = submissionId(body.category + "\u0000" + body.message);
    if (rating) body.rating = Number(rating);
    if (field("feedback-contact").value.trim()) body.contact = field("feedback-contact").value.trim();
    if (ll) body.livelesson_id = ll.id;
    if (a.page) {
      body.lesson = a.page.lesson;
      body.stage = a.page.stage;
    }
    send.disabled = true;
    status.className = "";
    status.textContent = "Sending…";
    try {
      const response = await fetch("/api/v1/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      const json = await response.json().catch(() => null);
      if (!response.ok) {
        throw new Error(json && json.error ? json.error.message : "HTTP " + response.status);
      }
      status.className = "sent";
      status.textContent = "Thank you — your report is " + json.feedback_id + ".";
      status.dataset.reference = json.feedback_id;
      field("feedback-message").value = "";
      field("feedback-rating").value = "";
      pending = null;
    } catch (e) {
      // The text stays in the form: send again when the platform is back.
      status.className = "failed";
      status.textContent = "Not sent: " + e.message;
    } finally {
      send.disabled = false;
    }
  });
})();
