// Copy buttons: <button class="copy" data-copy="#element-with-the-text">.
document.addEventListener("click", async (e) => {
  const button = e.target.closest("button.copy");
  if (!button) return;
  const text = document.querySelector(button.dataset.copy).textContent.trim();
  await navigator.clipboard.writeText(text);
  sessionStorage.setItem("mediagate.key", text);
  const note = button.parentElement.querySelector(".copied");
  if (note) note.hidden = false;
});
