/** Protection options, as the service takes them (the port of grasp_sdk/options.py). */

export const PRESETS = Object.freeze(["fast", "balanced", "strong"]);
export const SIZE_MODES = Object.freeze(["any", "max", "exact"]);
export const ON_NO_FACE = Object.freeze(["skip", "whole"]);

const DEFAULTS = Object.freeze({
  preset: "balanced",
  sizeMode: "any",
  onNoFace: "skip",
  site: null,
  siteJpegQuality: null,
  siteMaxSide: null,
  siteBlurSigma: null,
});

/** The option names on the wire (query parameters), in Python's field order. */
const WIRE_NAMES = Object.freeze({
  preset: "preset",
  sizeMode: "size_mode",
  onNoFace: "on_no_face",
  site: "site",
  siteJpegQuality: "site_jpeg_quality",
  siteMaxSide: "site_max_side",
  siteBlurSigma: "site_blur_sigma",
});

/**
 * How one image is protected; validated on construction (throws RangeError), frozen.
 *
 * - `preset`: optimisation budget, `fast` | `balanced` | `strong`.
 * - `sizeMode`: `any` size, `max` (never larger than the input) or `exact` (same length).
 * - `onNoFace`: `skip` returns the input byte-identical; `whole` protects all of it.
 * - `site`: a policy site name whose `site_pipeline` the defense should survive.
 * - `siteJpegQuality`, `siteMaxSide`, `siteBlurSigma`: ad-hoc site pipeline values.
 */
export class ProtectOptions {
  constructor(values = {}) {
    const unknown = Object.keys(values).filter((k) => !(k in DEFAULTS));
    if (unknown.length) throw new RangeError(`unknown option(s): ${unknown.join(", ")}`);
    Object.assign(this, DEFAULTS, dropUndefined(values));
    check(PRESETS.includes(this.preset), `preset must be one of ${PRESETS.join(", ")}, got '${this.preset}'`);
    check(SIZE_MODES.includes(this.sizeMode),
      `sizeMode must be one of ${SIZE_MODES.join(", ")}, got '${this.sizeMode}'`);
    check(ON_NO_FACE.includes(this.onNoFace),
      `onNoFace must be one of ${ON_NO_FACE.join(", ")}, got '${this.onNoFace}'`);
    check(this.siteJpegQuality === null ||
      (Number.isInteger(this.siteJpegQuality) && this.siteJpegQuality >= 1 && this.siteJpegQuality <= 100),
      `siteJpegQuality must be an integer in 1..100, got ${this.siteJpegQuality}`);
    check(this.siteMaxSide === null || (Number.isInteger(this.siteMaxSide) && this.siteMaxSide >= 16),
      `siteMaxSide must be an integer of at least 16, got ${this.siteMaxSide}`);
    check(this.siteBlurSigma === null ||
      (typeof this.siteBlurSigma === "number" && this.siteBlurSigma > 0 && this.siteBlurSigma <= 10),
      `siteBlurSigma must be in (0, 10], got ${this.siteBlurSigma}`);
    Object.freeze(this);
  }

  /** Query-string form: only the options that differ from the defaults (as Python sends). */
  toParams() {
    const params = {};
    for (const [key, wire] of Object.entries(WIRE_NAMES)) {
      const value = this[key];
      if (value !== null && value !== DEFAULTS[key]) params[wire] = pythonStr(key, value);
    }
    return params;
  }
}

function dropUndefined(values) {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
}

function check(ok, message) {
  if (!ok) throw new RangeError(message);
}

/** Python's `str()` of the value: a float keeps its `.0` (`1.0`, not `1`). */
function pythonStr(key, value) {
  if (key === "siteBlurSigma" && Number.isInteger(value)) return value.toFixed(1);
  return String(value);
}
