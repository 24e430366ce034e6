// Copy buttons: every code block gets one, and <button class="copy" data-copy="#element">
// copies that element's text. `data-remember` (a new key's secret) also keeps the secret
// in this tab's sessionStorage for the API console's key picker.
(() => {
  "use strict";
  const STORE = "mediagate.keys";

  // Secrets this tab was given, newest first. The server keeps only each key's hint.
  window.mediagateKeys = {
    hint: (secret) => `${secret.slice(0, 13)}…${secret.slice(-4)}`,
    remembered: () => {
      try {
        return JSON.parse(sessionStorage.getItem(STORE) || "[]");
      } catch {
        return [];
      }
    },
    remember(secret) {
      const kept = this.remembered().filter((s) => s !== secret);
      sessionStorage.setItem(STORE, JSON.stringify([secret, ...kept].slice(0, 20)));
    },
  };

  for (const pre of document.querySelectorAll("pre")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy code-copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy this code");
    pre.prepend(button);
  }

  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button.copy");
    if (!button) return;
    const source = button.dataset.copy
      ? document.querySelector(button.dataset.copy)
      : button.parentElement.querySelector("code") || button.parentElement;
    const text = source.textContent.trim();
    await navigator.clipboard.writeText(text);
    if (button.dataset.remember !== undefined) window.mediagateKeys.remember(text);
    const note = button.parentElement.querySelector(".copied");
    if (note) note.hidden = false;
    else button.textContent = "Copied";
  });
})();
