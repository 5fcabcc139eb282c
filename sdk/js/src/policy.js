/**
 * The per-site upload policy, read from the JSON that `grasp-guard policy compile` writes
 * from the YAML (the port of grasp_sdk/policy.py). The first enabled site whose host, path
 * and method match a request wins.
 */

import { PolicyError } from "./errors.js";
import { ON_NO_FACE, PRESETS, ProtectOptions, SIZE_MODES } from "./options.js";
import { parseHost, parsePath } from "./patterns.js";

export const FORMAT = "grasp-guard-policy";
export const FORMATS = Object.freeze(["multipart", "raw", "json_base64", "form_base64"]);
export const ON_FAILURE = Object.freeze(["pass", "block"]);
/** Fields of the compiled policy that only the proxy uses. */
const PROXY_ONLY = new Set(["chunked_upload"]);

/** One site's rule; see the shipped grasp_sdk/policy.yaml for the meaning of each field. */
export class SiteRule {
  constructor(fields) {
    Object.assign(this, fields);
    Object.freeze(this);
  }

  /** Whether a request to `host` + `path` (no query) with `method` is this site's. */
  matches(method, host, path) {
    return this.methods.has(method.toUpperCase()) &&
      this.hosts.some((h) => h.matches(host)) &&
      (this.paths.length === 0 || this.paths.some((p) => p.matches(path)));
  }

  /**
   * The protection options for this site's images.
   * @param {{exactSize?: boolean, preset?: string}} [overrides] `exactSize` forces
   *   `sizeMode: "exact"` (a signature covers the body length); `preset` replaces the site's.
   */
  options({ exactSize = false, preset } = {}) {
    const pipeline = this.sitePipeline;
    return new ProtectOptions({
      preset: preset ?? this.preset,
      sizeMode: exactSize ? "exact" : this.sizeMode,
      onNoFace: this.onNoFace,
      site: this.name,
      // The defense must survive the harshest re-encode the site applies.
      siteJpegQuality: pipeline?.jpegQuality?.[0] ?? null,
      siteMaxSide: pipeline?.maxSide ?? null,
      siteBlurSigma: pipeline?.blurSigma ?? null,
    });
  }
}

/** The ordered site rules of one compiled policy. */
export class Policy {
  /**
   * @param {SiteRule[]} sites every rule, enabled or not, in file order.
   * @param {string} source where the policy came from, for messages.
   */
  constructor(sites, source = "<json>") {
    this.sites = Object.freeze([...sites]);
    this.source = source;
    Object.freeze(this);
  }

  /** The first enabled rule matching `method` and `url`, or null. */
  match(method, url) {
    const { host, path } = hostAndPath(url);
    return this.sites.find((s) => s.enabled && s.matches(method, host, path)) ?? null;
  }

  /** The rule named `name` (enabled or not), or null. */
  get(name) {
    return this.sites.find((s) => s.name === name) ?? null;
  }
}

/**
 * The host (lower-case, no port, IPv6 without brackets) and the path (no query) of `url`,
 * as Python's `urlsplit` gives them; an unparsable URL has neither.
 */
export function hostAndPath(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return { host: "", path: "/" };
  }
  return { host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"), path: parsed.pathname || "/" };
}

/**
 * Load a compiled policy: the parsed JSON document or its text. Throws PolicyError naming
 * the source, the site and the field.
 * @param {object | string} doc
 * @param {{source?: string}} [options]
 */
export function loadPolicy(doc, { source = "<json>" } = {}) {
  if (typeof doc === "string") {
    try {
      doc = JSON.parse(doc);
    } catch (error) {
      throw new PolicyError(`not valid JSON: ${error.message}`, { source });
    }
  }
  if (!isObject(doc) || doc.format !== FORMAT) {
    throw new PolicyError(`not a compiled policy (expected "format": "${FORMAT}"; ` +
      "write one with `grasp-guard policy compile`)", { source });
  }
  if (doc.version !== 1) {
    throw new PolicyError(`unsupported version ${JSON.stringify(doc.version)} (expected 1)`, { source });
  }
  if (!Array.isArray(doc.sites) || doc.sites.length === 0) {
    throw new PolicyError("'sites' must be a non-empty list", { source });
  }
  const rules = [];
  doc.sites.forEach((entry, index) => {
    const rule = parseSite(entry, source, index);
    if (rules.some((r) => r.name === rule.name)) {
      throw new PolicyError("duplicate site name", { source, site: rule.name, field: "name" });
    }
    rules.push(rule);
  });
  return new Policy(rules, source);
}

function parseSite(entry, source, index) {
  if (!isObject(entry)) throw new PolicyError("a site must be an object", { source, site: `#${index + 1}` });
  const site = typeof entry.name === "string" && entry.name.trim() ? entry.name : `#${index + 1}`;
  const fields = {};
  for (const [key, parse] of Object.entries(FIELDS)) {
    if (!(key in entry)) throw new PolicyError("required", { source, site, field: key });
    try {
      fields[camel(key)] = parse(entry[key]);
    } catch (error) {
      throw new PolicyError(error.message, { source, site, field: key });
    }
  }
  const unknown = Object.keys(entry).filter((k) => !(k in FIELDS) && !PROXY_ONLY.has(k));
  if (unknown.length) throw new PolicyError("unknown field", { source, site, field: unknown[0] });
  const rule = new SiteRule(fields);
  try {
    rule.options();
  } catch (error) {
    throw new PolicyError(error.message, { source, site });
  }
  return rule;
}

function camel(key) {
  return key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function string(value) {
  if (typeof value !== "string" || !value.trim()) {
    throw new Error(`expected a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value.trim();
}

function strings(value) {
  if (!Array.isArray(value)) throw new Error(`expected a list of strings, got ${JSON.stringify(value)}`);
  return Object.freeze(value.map(string));
}

function choice(choices) {
  return (value) => {
    if (!choices.includes(value)) {
      throw new Error(`expected one of ${choices.join(", ")}, got ${JSON.stringify(value)}`);
    }
    return value;
  };
}

function nonEmpty(list, what) {
  if (list.length === 0) throw new Error(`at least one ${what} is required`);
  return list;
}

function boolean(value) {
  if (typeof value !== "boolean") throw new Error(`expected true or false, got ${JSON.stringify(value)}`);
  return value;
}

function integer(low, high) {
  return (value) => {
    if (!Number.isInteger(value) || value < low || value > high) {
      throw new Error(`expected an integer in ${low}..${high}, got ${JSON.stringify(value)}`);
    }
    return value;
  };
}

function pipeline(value) {
  if (value === null) return null;
  if (!isObject(value)) throw new Error(`expected an object or null, got ${JSON.stringify(value)}`);
  const quality = value.jpeg_quality ?? null;
  if (quality !== null && !(Array.isArray(quality) && quality.length === 2 &&
      quality.every(integer(1, 100)) && quality[0] <= quality[1])) {
    throw new Error(`jpeg_quality must be [low, high] in 1..100, got ${JSON.stringify(quality)}`);
  }
  const maxSide = value.max_side ?? null;
  const sigma = value.blur_sigma ?? null;
  if (sigma !== null && !(typeof sigma === "number" && sigma > 0 && sigma <= 10)) {
    throw new Error(`blur_sigma must be a number in (0, 10], got ${JSON.stringify(sigma)}`);
  }
  return Object.freeze({
    jpegQuality: quality,
    maxSide: maxSide === null ? null : integer(16, 65535)(maxSide),
    blurSigma: sigma,
  });
}

const FIELDS = {
  name: string,
  enabled: boolean,
  hosts: (v) => Object.freeze(nonEmpty(strings(v), "host").map(parseHost)),
  paths: (v) => Object.freeze(strings(v).map(parsePath)),
  methods: (v) => new Set(nonEmpty(strings(v), "method").map((m) => m.toUpperCase())),
  formats: (v) => new Set(nonEmpty(strings(v), "format").map(choice(FORMATS))),
  fields: strings,
  preset: choice(PRESETS),
  size_mode: choice(SIZE_MODES),
  on_no_face: choice(ON_NO_FACE),
  on_failure: choice(ON_FAILURE),
  site_pipeline: pipeline,
  max_bytes: integer(1, 2 ** 40),
  length_headers: strings,
  signed: boolean,
};
