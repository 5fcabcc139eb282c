/**
 * The messages content scripts send the background worker, checked before anything is
 * done with them. A page never talks to the background itself (its script reaches only
 * the extension's content script, through a port the page never sees); still, what
 * arrives here is held to the page it came from: a frame of a tab (the top one, or an
 * iframe: the frame's own URL counts, not its parent's), a site the policy enables on that
 * page's host, a whole image within the site's max_bytes.
 */

import { ProtectOptions, imageType, isComplete } from "../sdk/index.js";
import { fromBase64 } from "../sdk/src/bytes.js";
import { SIZE_MODES } from "../sdk/src/options.js";
import { pageUrl } from "./sites.js";

/** A message the background refuses to act on; its message says why. */
export class MessageRefused extends Error {}

export const NOTICE_LEVELS = Object.freeze(["info", "warning", "error"]);
const MAX_NOTICE = 500;

/**
 * The URL of the page that sent a runtime message, when it may ask anything: a content
 * script of this extension in a frame of a tab (its own URL: an iframe's, not its parent's;
 * for a frame the page wrote itself, about:blank or srcdoc, its origin: its creator's).
 * @param {chrome.runtime.MessageSender} sender
 * @param {string} extensionId `chrome.runtime.id`.
 * @throws {MessageRefused}
 */
export function senderPage(sender, extensionId) {
  if (sender?.id !== extensionId) throw new MessageRefused("not from this extension");
  if (!sender.tab || !Number.isInteger(sender.frameId)) throw new MessageRefused("not from a frame of a tab");
  if (typeof sender.url !== "string") throw new MessageRefused("the sending page has no URL");
  return pageUrl(sender.url, sender.origin);
}

/**
 * A protect request checked against the page it came from.
 * @param {unknown} message `{kind: "protect", site, sizeMode, data}` (data: base64).
 * @param {string} url the sending page (from `senderPage`, never from the message).
 * @param {import("./sites.js").PageSites} pageSites
 * @returns {{site: import("../sdk/index.js").SiteRule, data: Uint8Array, mediaType: string,
 *   options: ProtectOptions}}
 * @throws {MessageRefused}
 */
export function protectRequest(message, url, pageSites) {
  if (typeof message !== "object" || message === null || message.kind !== "protect") {
    throw new MessageRefused("not a protect request");
  }
  const site = pageSites.sitesFor(url).find((s) => s.name === message.site);
  if (!site) throw new MessageRefused(`the site ${JSON.stringify(message.site)} is not enabled on this page`);
  const sizeMode = message.sizeMode ?? "any";
  if (!SIZE_MODES.includes(sizeMode)) throw new MessageRefused(`unknown size mode ${JSON.stringify(sizeMode)}`);
  if (typeof message.data !== "string" || message.data.length > Math.ceil(site.maxBytes / 3) * 4) {
    throw new MessageRefused(`the image must be base64 text of at most ${site.maxBytes} bytes`);
  }
  const data = fromBase64(message.data);
  const mediaType = data === null ? null : imageType(data);
  if (mediaType === null || !isComplete(data, mediaType)) throw new MessageRefused("not a whole image");
  return { site, data, mediaType, options: optionsFor(site, sizeMode) };
}

/**
 * The site's options, with the size mode the request needs when stricter than the site's
 * (a signature or a declared length seen by the upload hook): never looser.
 */
export function optionsFor(site, sizeMode) {
  const options = site.options();
  if (SIZE_MODES.indexOf(sizeMode) <= SIZE_MODES.indexOf(options.sizeMode)) return options;
  return new ProtectOptions({ ...options, sizeMode });
}

/**
 * A notice to show on the page's badge and in the popup.
 * @returns {{level: string, text: string}}
 * @throws {MessageRefused}
 */
export function noticeMessage(message) {
  if (typeof message !== "object" || message === null || message.kind !== "notice" ||
      !NOTICE_LEVELS.includes(message.level) || typeof message.text !== "string") {
    throw new MessageRefused("not a notice");
  }
  return { level: message.level, text: message.text.slice(0, MAX_NOTICE) };
}
