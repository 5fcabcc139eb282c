/**
 * The content script (isolated world, document_start) on the pages of enabled sites.
 *
 * It holds the photos the user chooses, drops or pastes until the background worker has them
 * protected (lib/intercept.js), and it is the page-world script's only way to the
 * background: over the private port of lib/handshake.js it takes that script's requests
 * (an image in an upload a page script sends; a choice it held) and serves them. Neither
 * the page nor its scripts can reach the background or the service through it otherwise.
 * Notices: a toast on the page and the badge.
 */

import { PAGES, POLICY } from "./config.js";
import { UploadBlockedError, loadPolicy, protectFile } from "./sdk/index.js";
import { fromBase64, toBase64 } from "./sdk/src/bytes.js";
import { REOPENED, SITES_OFF, offerPort } from "./lib/handshake.js";
import { interceptChoices, mayBeImage } from "./lib/intercept.js";
import { showNotice } from "./lib/notice.js";
import { PageSites, pageUrl } from "./lib/sites.js";

const policy = loadPolicy(POLICY, { source: "the extension's policy" });
const pageSites = new PageSites(policy, PAGES);
// An about:blank or srcdoc frame the page writes itself works for its creator's sites.
const page = pageUrl(location.href, self.origin);

/** Ask the background worker to protect one image for `site`; a ProtectFn's result. */
async function protectInBackground(site, sizeMode, data) {
  const answer = await chrome.runtime.sendMessage({ kind: "protect", site, sizeMode, data: toBase64(data) });
  if (!answer?.ok) throw new Error(answer?.error ?? "no answer from the extension's background worker");
  return { data: fromBase64(answer.data), contentType: answer.contentType, report: answer.report };
}

function notify(level, text) {
  showNotice(document, level, `GRASP Guard: ${text}`);
  try {  // throws at once, not a rejection, once the extension was updated under the tab
    chrome.runtime.sendMessage({ kind: "notice", level, text }).catch(() => {});
  } catch {
    // the page's own toast said it
  }
}

/** The photos chosen, dropped or pasted, protected for `site` (or as its on_failure says); null: refused. */
async function protectChosen(site, files) {
  const protect = (data, options) => protectInBackground(options.site, options.sizeMode, data);
  const photos = files.filter(mayBeImage).length;  // the input reads "no file" meanwhile: say why
  if (photos) showNotice(document, "info", `GRASP Guard: protecting ${photos} photo(s) for ${site.name}; the page gets them when done`);
  let outcomes;
  try {
    outcomes = await Promise.all(files.map((file) => protectFile(file, { policy, site: site.name, protect })));
  } catch (error) {
    const why = error instanceof UploadBlockedError ? error.cause?.message ?? error.message : error.message;
    notify("error", `refused the photo for ${site.name}: it could not be protected (${why})`);
    return null;
  }
  const failed = outcomes.filter((o) => o.error !== null);
  const done = outcomes.filter((o) => o.protected);
  for (const outcome of failed) {
    notify("warning", `${outcome.file.name} goes to ${site.name} UNPROTECTED: ${outcome.error.message}`);
  }
  if (done.length) notify("info", `protected ${done.length} photo(s) for ${site.name}`);
  return outcomes.map((o) => o.file);
}

/** The sites the user switched off in the popup (the background checks again). */
async function disabledSites() {
  try {
    return (await chrome.storage.local.get("disabledSites")).disabledSites ?? [];
  } catch {  // the extension was updated under the tab: the background will say
    return [];
  }
}

/** A dropped folder: its photos cannot be protected. Refused on a `block` site. */
function refusesFolder(site) {
  if (site === null) return false;
  const refused = site.onFailure === "block";
  notify(refused ? "error" : "warning", refused
    ? `refused a dropped folder for ${site.name}: its photos could not be protected (drop the photos themselves)`
    : `a dropped folder goes to ${site.name} UNPROTECTED: drop the photos themselves to have them protected`);
  return refused;
}

/**
 * Serve the page-world script's requests arriving on our end of the private port.
 * @param {MessagePort} port
 * @param {() => void} listenAgain adds our listeners again after `document.open()`.
 */
function servePageScript(port, listenAgain) {
  port.onmessage = async ({ data: message }) => {
    if (message?.kind === REOPENED) {
      listenAgain();
      return;
    }
    if (message?.kind === "outcome") {
      const { site, blocked, failed, reason } = message;
      if (blocked) notify("error", `refused an upload to ${site}: ${reason}`);
      else if (failed) notify("warning", `an upload to ${site} went out UNPROTECTED: ${reason}`);
      return;
    }
    try {
      if (message?.kind === "protect" && message.data instanceof Uint8Array) {
        const result = await protectInBackground(message.site, message.sizeMode, message.data);
        port.postMessage({ id: message.id, ok: true, ...result });
      } else if (message?.kind === "choose" && Array.isArray(message.files) && message.files.every((f) => f instanceof Blob)) {
        port.postMessage({ id: message.id, ok: true, files: await protectChoice(message.files) });
      }
    } catch (error) {
      port.postMessage({ id: message.id, ok: false, error: error.message });
    }
  };
}

/**
 * A choice held in the page's world (a file input outside the document, the File System
 * Access picker, the clipboard), protected here: the page's scripts never reach the
 * originals' methods in this world. A Blob (a clipboard image) becomes a File.
 */
async function protectChoice(blobs) {
  const files = blobs.map((blob) => (blob instanceof File ? blob : new File([blob], "pasted", { type: blob.type })));
  const site = pageSites.siteFor(page, await disabledSites());
  return site === null ? files : protectChosen(site, files);
}

if (pageSites.sitesFor(page).length > 0) {
  const port = offerPort(window);
  let listenAgain = () => {};
  servePageScript(port, () => listenAgain());
  // The site is looked up per choice: the popup may have switched one off since the page
  // loaded, and then the page's next site (if any) is the one the photos go to.
  // A drop must be decided at once: the sites switched off as last read. The page-world
  // script hears of each change too, for the uploads its scripts send.
  let knownDisabled = [];
  let changed = false;
  const learn = (names) => {
    knownDisabled = names;
    port.postMessage({ kind: SITES_OFF, names });
  };
  disabledSites().then((names) => { if (!changed) learn(names); });
  try {
    chrome.storage.onChanged.addListener((changes) => {
      if (!changes.disabledSites) return;
      changed = true;
      learn(changes.disabledSites.newValue ?? []);
    });
  } catch {
    // the extension was updated under the tab
  }
  const activeSite = () => pageSites.siteFor(page, knownDisabled);
  listenAgain = interceptChoices(window, protectChoice, () => refusesFolder(activeSite()), () => activeSite() !== null);
}
