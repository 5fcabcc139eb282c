/**
 * Host, path and field-name patterns of the policy, compiled once to regexes (the port of
 * grasp_sdk/patterns.py; the shared policy cases hold both to the same answers).
 *
 * - Hosts: an exact name, or a glob where `*` matches any run of characters (dots too):
 *   `*.fbcdn.net` matches `scontent-lhr8-1.xx.fbcdn.net` but not `fbcdn.net`. `*` alone
 *   matches any host. Matched lower-cased, whole.
 * - Paths: a glob where `*` matches within one segment and `**` across segments, or a
 *   regex when it starts with `^` (matched from the start, like Python's `re.match`).
 *   Paths are matched without the query string.
 * - Field names: exact, or with `*` wildcards (`files[*]`).
 */

export const ANY_HOST = "*";
const HOST_CHARS = /^[a-z0-9*?._-]+$/;

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** A compiled host pattern; `text` is what the policy said. */
export class HostPattern {
  constructor(text, regex) {
    this.text = text;
    this.regex = new RegExp(`^(?:${regex})$`);
    Object.freeze(this);
  }

  /** Whether this pattern matches every host. */
  get anyHost() {
    return this.text === ANY_HOST;
  }

  /** Whether `host` (any case) matches. */
  matches(host) {
    return this.regex.test(host.toLowerCase());
  }
}

/** A compiled path pattern (glob or `^regex`); `text` is what the policy said. */
export class PathPattern {
  constructor(text, regex) {
    this.text = text;
    this.regex = regex;
    Object.freeze(this);
  }

  /** Whether `path` (no query string) matches. */
  matches(path) {
    return this.regex.test(path);
  }
}

/** Compile a host pattern; throws Error. */
export function parseHost(text) {
  const host = text.trim().toLowerCase();
  if (!host || !HOST_CHARS.test(host)) {
    throw new Error(`not a host name or host glob: '${text}'`);
  }
  const regex = [...host].map((c) => (c === "*" ? ".+" : c === "?" ? "." : escapeRegExp(c)));
  return new HostPattern(host, regex.join(""));
}

/** Compile a path glob, or a regex if it starts with `^`; throws Error. */
export function parsePath(text) {
  if (text.startsWith("^")) {
    try {
      // Anchored as a whole, as Python's re.match is: `^/a|/b` must not find `/b` mid-path.
      return new PathPattern(text, new RegExp(`^(?:${text})`));
    } catch (error) {
      throw new Error(`bad path regex '${text}': ${error.message}`);
    }
  }
  if (!text.startsWith("/")) {
    throw new Error(`path glob must start with '/' (or be a '^' regex): '${text}'`);
  }
  const wild = { "**": ".*", "*": "[^/]*", "?": "[^/]" };
  const regex = text.split(/(\*\*|\*|\?)/).map((p) => wild[p] ?? escapeRegExp(p)).join("");
  return new PathPattern(text, new RegExp(`^(?:${regex})$`));
}

/** Whether a field name matches any of `patterns` (`*` wildcards only). */
export function nameMatches(name, patterns) {
  return patterns.some((pattern) =>
    new RegExp(`^(?:${pattern.split("*").map(escapeRegExp).join(".*")})$`).test(name));
}
