/**
 * The extension's page-world script (main world, document_start), the second line: an
 * upload a page script sends with fetch or XMLHttpRequest that still carries an
 * unprotected photo (one the page made itself, e.g. resized in a canvas) is protected on
 * its way out by the SDK's wrapFetch and patchXMLHttpRequest, per the policy restricted to
 * the page's sites. Installed before any page script runs, so that none holds the
 * unwrapped fetch. It has no access to the service: each image goes over the private port
 * to the content script, which asks the background worker. A photo already protected by
 * the extension comes back as it is.
 */

import { PAGES, POLICY } from "./config.js";
import { loadPolicy, patchXMLHttpRequest, wrapFetch } from "./sdk/index.js";
import { takePort } from "./lib/handshake.js";
import { PageSites } from "./lib/sites.js";

const pageSites = new PageSites(loadPolicy(POLICY, { source: "the extension's policy" }), PAGES);
const policy = pageSites.policyFor(location.href);

/** How long an upload waits for the content script's port before its on_failure applies. */
const PORT_WAIT_MS = 10_000;

/** Requests over the port once the content script's offer arrives; queued until then. */
function portClient() {
  const waiting = new Map();
  let nextId = 1;
  let ready;
  const offered = new Promise((resolve) => { ready = resolve; });
  const port = Promise.race([offered, new Promise((resolve, reject) => setTimeout(
    () => reject(new Error("the extension's content script never answered")), PORT_WAIT_MS))]);
  port.catch(() => {});  // each upload hears of it
  takePort(window, (taken) => {
    taken.listen((data) => {
      const pending = waiting.get(data?.id);
      if (!pending) return;
      waiting.delete(data.id);
      if (data.ok) pending.resolve({ data: data.data, contentType: data.contentType, report: data.report });
      else pending.reject(new Error(data.error));
    });
    ready(taken);
  });
  return {
    async protect(data, options) {
      const taken = await port;
      const id = nextId++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        taken.post({ id, kind: "protect", site: options.site, sizeMode: options.sizeMode, data });
      });
    },
    report(outcome) {
      offered.then((taken) => taken.post({
        kind: "outcome", site: outcome.site, blocked: outcome.blocked,
        failed: outcome.error !== null, reason: outcome.reason,
      }));
    },
  };
}

if (policy.sites.length > 0) {
  const client = portClient();
  const options = { policy, protect: client.protect, onOutcome: client.report };
  window.fetch = wrapFetch(window.fetch.bind(window), options);
  patchXMLHttpRequest(window.XMLHttpRequest, options);
}
