// The chat panel: posts the question to /api/chat and shows the answer. Text is only ever set through
// textContent, so nothing from the journal or the model is interpreted as HTML.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const log = document.getElementById("chat-log");
  if (!form || !input || !log) return;
  const add = (tag, cls, text) => {
    const el = document.createElement(tag);
    el.className = cls;
    el.textContent = text;
    log.appendChild(el);
    return el;
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question) return;
    add("p", "q", question);
    const pending = add("pre", "answer pending", "…");
    const button = document.getElementById("chat-send");
    button.disabled = true;
    try {
      const response = await fetch("/api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ question }),
      });
      const data = await response.json();
      if (!response.ok) throw new Error(data.error || data.detail || response.statusText);
      pending.textContent = data.text;
      pending.className = "answer mode-" + data.mode;
      pending.dataset.mode = data.mode;
      if (data.llm) {
        const u = data.llm;
        add("p", "via", `${data.mode} · ${u.model} · prompt ${u.prompt_id} (${u.prompt_hash.slice(0, 12)}) · ` +
          `${u.calls} model call(s), ${u.input_tokens}/${u.output_tokens} tokens`);
      }
      if (data.cited && data.cited.length) {
        const cited = add("p", "cited", "cited: ");
        for (const id of data.cited) {
          const a = document.createElement("a");
          a.href = "/decisions/" + encodeURIComponent(id);
          a.textContent = id;
          cited.appendChild(a);
        }
      }
    } catch (err) {
      pending.textContent = "The question could not be answered: " + err.message;
      pending.className = "answer failed";
      pending.dataset.mode = "failed";
    } finally {
      button.disabled = false;
      log.scrollTop = log.scrollHeight;
    }
  });
});
