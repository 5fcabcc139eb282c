/**
 * The extension's page-world script (main world, document_start), the second line: an
 * upload a page script sends with fetch or XMLHttpRequest that still carries an
 * unprotected photo (one the page made itself, e.g. resized in a canvas) is protected on
 * its way out by the SDK's wrapFetch and patchXMLHttpRequest, per the policy restricted to
 * the page's sites (a beacon that may carry one is declined: lib/beacon.js). Installed
 * before any page script runs, so that none holds the unwrapped fetch. It has no access to
 * the service: each image goes over the private port to the content script, which asks the
 * background worker. A photo already protected by the extension comes back as it is. It
 * also holds the choices of the file inputs whose events never reach the window, where the
 * content script holds the others (lib/intercept.js), the photos a script reads through
 * the File System Access API, and the images it reads from the clipboard. After a
 * `document.open()`, which removes every listener of the window, it adds its own again
 * and has the content script add its.
 */

import { PAGES, POLICY } from "./config.js";
import { loadPolicy, patchXMLHttpRequest, wrapFetch } from "./sdk/index.js";
import { declinePhotoBeacons } from "./lib/beacon.js";
import { REOPENED, SITES_OFF, takePort } from "./lib/handshake.js";
import {
  choiceHolder, holdClipboardImages, holdPickedFiles, holdUnreachableInputs, watchDocumentOpen,
} from "./lib/intercept.js";
import { PageSites, pageUrl } from "./lib/sites.js";

const pageSites = new PageSites(loadPolicy(POLICY, { source: "the extension's policy" }), PAGES);
const page = pageUrl(location.href, self.origin);
const policy = pageSites.policyFor(page);

/** How long an upload waits for the content script's port before its on_failure applies. */
const PORT_WAIT_MS = 10_000;

/**
 * Requests over the port once the content script's offer arrives; queued until then. The
 * port object stays in this closure: it never passes through a promise or a callback a
 * page script could have replaced (Promise.prototype.then, a getter on Object.prototype).
 * @param {(names: string[]) => void} onSitesOff told the sites switched off in the popup,
 *   when the port arrives and on each change.
 */
function portClient(onSitesOff) {
  const waiting = new Map();
  // A queue of no prototype, walked by index: a page's Array.prototype cannot reach it.
  const queued = Object.create(null);
  let [head, tail] = [0, 0];
  let nextId = 1;
  let port = null;
  let gaveUp = false;
  const send = (message) => {
    if (port !== null) port.post(message);
    else queued[tail++] = message;
  };
  takePort(window, (taken) => {
    port = taken;
    port.listen((data) => {
      if (data?.kind === SITES_OFF) {
        if (Array.isArray(data.names) && data.names.every((name) => typeof name === "string")) onSitesOff(data.names);
        return;
      }
      const pending = waiting.get(data?.id);
      if (!pending) return;
      waiting.delete(data.id);
      if (data.ok) pending.resolve(data);
      else pending.reject(new Error(data.error));
    });
    for (; head < tail; head++) {
      port.post(queued[head]);
      delete queued[head];
    }
  });
  const unanswered = () => new Error("the extension's content script never answered");
  setTimeout(() => {
    if (port !== null) return;
    gaveUp = true;  // each request waiting hears of it, and those after it at once
    for (const pending of waiting.values()) pending.reject(unanswered());
    waiting.clear();
  }, PORT_WAIT_MS);
  /** One request and its answer, `{ok: true, ...}`. */
  const ask = (message) => {
    if (gaveUp) return Promise.reject(unanswered());
    const id = nextId++;
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      send({ id, ...message });
    });
  };
  return {
    /** A ProtectFn over the port: an image in an upload a page script sends. */
    async protect(data, options) {
      const answer = await ask({ kind: "protect", site: options.site, sizeMode: options.sizeMode, data });
      return { data: answer.data, contentType: answer.contentType, report: answer.report };
    },
    /**
     * Photos the user chose (or a clipboard image, a Blob) protected by the content script,
     * in its own world, as the page's site says; null: refused. The page's world never
     * reads them: a page script's replacement of a Blob method cannot see the original.
     */
    async choose(files) {
      return (await ask({ kind: "choose", files })).files;
    },
    report(outcome) {  // kept for a late port too: its notice still shows
      send({ kind: "outcome", site: outcome.site, blocked: outcome.blocked,
        failed: outcome.error !== null, reason: outcome.reason });
    },
    /** `document.open()` removed the content script's listeners: it adds them again. */
    reopened() {
      send({ kind: REOPENED });
    },
  };
}

if (policy.sites.length > 0) {
  // The SDK's wrappers read options.policy per request: a site the user switches off in
  // the popup (the content script says which, now and on each change) leaves them.
  const options = { policy, protect: null, onOutcome: null };
  const client = portClient((names) => { options.policy = pageSites.policyFor(page, names); });
  options.protect = client.protect;
  options.onOutcome = client.report;
  window.fetch = wrapFetch(window.fetch.bind(window), options);
  patchXMLHttpRequest(window.XMLHttpRequest, options);
  declinePhotoBeacons(window, () => options.policy);
  const protectFiles = (files) => client.choose(files);
  const holdAgain = holdUnreachableInputs(window, choiceHolder(protectFiles));
  watchDocumentOpen(window, () => {
    holdAgain();
    client.reopened();
  });
  holdPickedFiles(window, protectFiles);
  holdClipboardImages(window, protectFiles);
}
