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

// rsconnect prints Connect's dashboard URLs: /connect/#/apps/{guid}, .../draft/{bundle} and .../logs. They land on
// the content list, which sends them on to the page they name.
(() => {
  if (!window.location.pathname.endsWith("/connect/")) return;
  const match = window.location.hash.match(/^#\/apps\/([0-9a-fA-F-]{36})(?:\/(?:draft\/(\d+)|(logs)))?\/?$/);
  if (!match) return;
  const [, guid, draft, logs] = match;
  const tab = logs ? "logs" : draft ? `versions#bundle-${draft}` : "info";
  window.location.replace(`apps/${guid}/${tab}`);
})();

// A fragment does not reach the server: carry it through sign-in, so a dashboard URL opened while signed out
// still lands on its page afterwards.
(() => {
  const next = document.querySelector('form input[type="hidden"][name="next"]');
  if (next && window.location.hash && !next.value.includes("#")) next.value += window.location.hash;
})();

// Logs show their newest lines: a <pre data-tail> starts scrolled to its end.
function showTails(root) {
  for (const pre of root.querySelectorAll("pre[data-tail]")) pre.scrollTop = pre.scrollHeight;
}
showTails(document);

// A link with data-refresh="ID" reloads just that element from its URL (the link works on its own without this).
document.addEventListener("click", async (event) => {
  const link = event.target.closest("a[data-refresh]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
  const target = document.getElementById(link.dataset.refresh);
  if (!target) return;
  event.preventDefault();
  try {
    const response = await fetch(link.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById(target.id);
    if (!fresh) throw new Error("no content");
    target.replaceWith(fresh);
    showTails(fresh);
    document.querySelector(`#${target.id} a[data-refresh]`)?.focus();
    announce("Refreshed");
  } catch (error) {
    window.location.href = link.href;
  }
});

// A page showing work in progress (a deploy task) reloads itself after data-reload seconds.
(() => {
  const link = document.querySelector("a[data-reload]");
  if (link) window.setTimeout(() => window.location.replace(link.href), 1000 * Number(link.dataset.reload || 2));
})();
