// Copy buttons: every code block gets one, and <button class="copy" data-copy="#element">
// copies that element's text. `data-remember` (a new key) also keeps it for the console.
(() => {
  "use strict";
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
    const source = button.dataset.copy ? document.querySelector(button.dataset.copy) : button.parentElement.querySelector("code") || button.parentElement;
    const text = source.textContent.trim();
    await navigator.clipboard.writeText(text);
    if (button.dataset.remember !== undefined) sessionStorage.setItem("mediagate.key", text);
    const note = button.parentElement.querySelector(".copied");
    if (note) note.hidden = false;
    else button.textContent = "Copied";
  });
})();
