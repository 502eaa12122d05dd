// Packyard's only script (pages allow no inline script): copy buttons and other small helpers.
"use strict";

function announce(message) {
  const region = document.getElementById("announcer");
  if (region) {
    region.textContent = "";
    window.setTimeout(() => { region.textContent = message; }, 50);
  }
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http on a non-local address has no clipboard API: copy through a selected textarea.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const label = button.textContent;
  try {
    await copyText(source.textContent);
    button.textContent = "Copied";
    announce("Copied to the clipboard");
  } catch (error) {
    button.textContent = "Select and copy";
    announce("Could not copy; select the text and copy it by hand");
  }
  window.setTimeout(() => { button.textContent = label; }, 2000);
});
