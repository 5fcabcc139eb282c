/**
 * Which policy sites a page works for. A site's uploads go to its policy hosts; the pages
 * that choose the photos are its hosts too (any-host `*` patterns excepted) or those that
 * pages.json lists for it. The first enabled site (in policy order) is the page's site for
 * photos chosen in file inputs or dropped; uploads the page sends are matched against all
 * of its sites.
 */

import { Policy } from "../sdk/index.js";
import { parseHost } from "../sdk/src/patterns.js";

/**
 * The page-host patterns of every site: its own hosts but `*`, and its pages.json entries.
 * @param {Policy} policy
 * @param {Record<string, string[]>} pages page host patterns by site name.
 * @returns {Map<string, import("../sdk/src/patterns.js").HostPattern[]>}
 */
export function pagePatterns(policy, pages) {
  const patterns = new Map();
  for (const site of policy.sites) {
    const extra = (pages[site.name] ?? []).map(parseHost);
    patterns.set(site.name, [...site.hosts, ...extra].filter((p) => !p.anyHost));
  }
  return patterns;
}

// Documents whose URL names no host of their own: an iframe a page writes itself
// (about:blank, about:srcdoc) or opens from a Blob or data: URL. Their origin is their
// creator's (or opaque, "null": a data: URL, a sandboxed frame), and it decides their sites.
const NO_HOST_SCHEMES = ["about:", "blob:", "data:"];

/**
 * The URL whose host decides a document's sites: its own, or for a document of
 * `NO_HOST_SCHEMES` its origin ("" for an opaque one).
 * @param {string} url the document's URL.
 * @param {string | undefined} origin its serialised origin (`self.origin`, a sender's `origin`).
 */
export function pageUrl(url, origin) {
  if (!NO_HOST_SCHEMES.some((scheme) => String(url).toLowerCase().startsWith(scheme))) return url;
  return typeof origin === "string" && origin !== "null" ? origin : "";
}

/** The host of a page URL as the policy matches it (lower case, no port); "" if none. */
export function pageHost(url) {
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  } catch {
    return "";
  }
}

/** What the extension does on pages, from the compiled policy and pages.json. */
export class PageSites {
  /**
   * @param {Policy} policy the compiled policy.
   * @param {Record<string, string[]>} pages page host patterns by site name.
   */
  constructor(policy, pages) {
    this.policy = policy;
    this.patterns = pagePatterns(policy, pages);
  }

  /**
   * The enabled sites working on the page at `url`, in policy order, those switched off
   * by the user (`disabled`, site names) left out.
   * @returns {import("../sdk/index.js").SiteRule[]}
   */
  sitesFor(url, disabled = []) {
    const host = pageHost(url);
    if (!host) return [];
    return this.policy.sites.filter((site) => site.enabled && !disabled.includes(site.name) &&
      this.patterns.get(site.name).some((p) => p.matches(host)));
  }

  /** The site whose options and on_failure apply to photos chosen on the page, or null. */
  siteFor(url, disabled = []) {
    return this.sitesFor(url, disabled)[0] ?? null;
  }

  /** The policy restricted to the page's sites: what its fetch and XHR uploads match. */
  policyFor(url, disabled = []) {
    return new Policy(this.sitesFor(url, disabled), `${this.policy.source} (page ${pageHost(url)})`);
  }

}
