/**
 * The user's settings, in `chrome.storage.local` (the extension's own storage, which pages
 * cannot read; the content script reads only the sites switched off): the service's URL,
 * its bearer token, and the policy sites switched off.
 */

import { SERVICE } from "../config.js";

export const DEFAULT_SETTINGS = Object.freeze({ service: SERVICE, token: "", disabledSites: [] });

/** The stored settings, defaults filled in (a service left blank in the popup is the default). */
export async function readSettings(storage = chrome.storage.local) {
  const stored = await storage.get(Object.keys(DEFAULT_SETTINGS));
  const settings = { ...DEFAULT_SETTINGS, ...stored };
  return settings.service ? settings : { ...settings, service: DEFAULT_SETTINGS.service };
}

let switches = Promise.resolve();

/** Switch the protection of one policy site on or off, one switch after another (two at
 * once would each write over the other's list). */
export function setSiteEnabled(site, enabled, storage = chrome.storage.local) {
  const change = switches.then(async () => {
    const { disabledSites } = await readSettings(storage);
    const others = disabledSites.filter((name) => name !== site);
    await storage.set({ disabledSites: enabled ? others : [...others, site] });
  });
  switches = change.catch(() => {});
  return change;
}
