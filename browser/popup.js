/** The popup: the current page's sites, each switched on or off, the service, the tab's notices. */

import { readSettings, setSiteEnabled } from "./lib/settings.js";
import { pageHost } from "./lib/sites.js";

const $ = (id) => document.getElementById(id);

function item(text, className = "") {
  const li = document.createElement("li");
  li.textContent = text;
  li.className = className;
  return li;
}

async function render() {
  const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
  const status = await chrome.runtime.sendMessage({ kind: "status", url: tab?.url ?? "", tabId: tab?.id });
  if (!status?.ok) {
    $("page").textContent = `Cannot ask the extension: ${status?.error ?? "no answer"}`;
    return;
  }
  $("page").textContent = status.sites.length ? `Photos you upload on ${pageHost(tab.url)} are protected for:`
    : `GRASP Guard does nothing on ${pageHost(tab?.url ?? "") || "this page"}: no enabled site's page.`;
  $("sites").replaceChildren(...status.sites.map((site) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = site.enabled;
    box.addEventListener("change", async () => {
      await setSiteEnabled(site.name, box.checked);
      await render();
    });
    const failure = site.onFailure === "block" ? "refused" : "sent as is, with a notice";
    label.append(box, ` ${site.name} (when protection fails: ${failure})`);
    return label;
  }));
  $("service-state").textContent = status.ready ? `Ready: ${status.service}` : `Not ready: ${status.service}`;
  $("service-state").className = status.ready ? "ok" : "bad";
  const notices = [...status.notices].reverse().map((n) => item(n.text, n.level));
  $("notices").replaceChildren(...(notices.length ? notices : [item("Nothing yet.")]));
}

async function loadSettings() {
  const settings = await readSettings();
  $("service").value = settings.service;
  $("token").value = settings.token;
}

$("save").addEventListener("click", async () => {
  await chrome.storage.local.set({ service: $("service").value.trim(), token: $("token").value.trim() });
  await render();
});

loadSettings();
render();
