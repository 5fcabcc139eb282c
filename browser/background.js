/**
 * The background worker: the only part of the extension that talks to the protection
 * service. Content scripts ask it to protect one image for the page they run in; it
 * checks who asks (this extension's content script, a frame of a tab, a site the policy
 * enables on that page) and what (a whole image), then calls the service with the token
 * kept in the extension's storage, and answers with the bytes. It also keeps the badge
 * and, for the popup, the tab's notices and the service's state.
 */

import { PAGES, POLICY } from "./config.js";
import { GraspClient, loadPolicy } from "./sdk/index.js";
import { equal, toBase64 } from "./sdk/src/bytes.js";
import { keptAlive } from "./lib/keep_alive.js";
import { MessageRefused, noticeMessage, protectRequest, senderPage } from "./lib/messages.js";
import { readSettings } from "./lib/settings.js";
import { PageSites } from "./lib/sites.js";
import { TabLog, sha256 } from "./lib/tab_log.js";

/** One protection, retries included: minutes on a CPU (the worker kept running meanwhile),
 * within the five minutes Chrome gives one event. */
const PROTECT_TIMEOUT_MS = 270_000;
/** A busy service (429, as Retry-After says) is asked again within that time. */
const PROTECT_RETRIES = 20;
const BADGE = { warning: ["!", "#b26b00"], error: ["!", "#c62828"], info: ["✓", "#2e7d32"] };

const pageSites = new PageSites(loadPolicy(POLICY, { source: "the extension's policy" }), PAGES);
const tabLog = new TabLog();

/** The image as it was, with the reason: what a page gets when nothing is to be done. */
function unchanged(request, reason, alreadyProtected = false) {
  return {
    ok: true, data: toBase64(request.data), contentType: request.mediaType,
    report: { protected: alreadyProtected, faces: 0, reason },
  };
}

async function protect(message, sender) {
  const request = protectRequest(message, senderPage(sender, chrome.runtime.id), pageSites);
  const settings = await readSettings();
  if (settings.disabledSites.includes(request.site.name)) {
    return unchanged(request, `GRASP Guard is off for ${request.site.name}`);
  }
  const tabId = sender.tab.id;
  if (await tabLog.wasProtected(tabId, await sha256(request.data))) {
    return unchanged(request, "already protected by GRASP Guard", true);
  }
  const client = new GraspClient(settings.service, {
    token: settings.token || null, totalTimeoutMs: PROTECT_TIMEOUT_MS, maxRetries: PROTECT_RETRIES,
  });
  const result = await keptAlive(client.protect(request.data, request.options, { contentType: request.mediaType }));
  if (!equal(result.data, request.data)) await tabLog.addProtected(tabId, await sha256(result.data));
  return { ok: true, data: toBase64(result.data), contentType: result.contentType, report: result.report };
}

async function notice(message, sender) {
  senderPage(sender, chrome.runtime.id);
  const { level, text } = noticeMessage(message);
  const tabId = sender.tab.id;
  await tabLog.addNotice(tabId, { level, text });
  const [badge, color] = BADGE[level];
  await chrome.action.setBadgeBackgroundColor({ tabId, color });
  await chrome.action.setBadgeText({ tabId, text: badge });
  return { ok: true };
}

/** For the popup: the page's sites, whether each is on, the service, the tab's notices. */
async function status(message, sender) {
  // An extension page (the popup, or the popup opened in a tab); content scripts send
  // their page's URL.
  if (sender.id !== chrome.runtime.id || !sender.url?.startsWith(chrome.runtime.getURL(""))) {
    throw new MessageRefused("status is for the extension's popup");
  }
  const settings = await readSettings();
  const sites = pageSites.sitesFor(String(message.url ?? "")).map((site) => ({
    name: site.name, onFailure: site.onFailure, enabled: !settings.disabledSites.includes(site.name),
  }));
  const client = new GraspClient(settings.service, { token: settings.token || null });
  return {
    ok: true, sites, service: settings.service, ready: await client.ready(),
    notices: Number.isInteger(message.tabId) ? await tabLog.notices(message.tabId) : [],
  };
}

const HANDLERS = { protect, notice, status };

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  const handler = Object.hasOwn(HANDLERS, message?.kind) ? HANDLERS[message.kind] : null;
  if (handler === null) return false;
  handler(message, sender).then(sendResponse, (error) => {
    sendResponse({ ok: false, error: `${error.name}: ${error.message}`, refused: error instanceof MessageRefused });
  });
  return true;  // answered asynchronously
});

chrome.tabs.onRemoved.addListener((tabId) => {
  tabLog.forget(tabId);
});
