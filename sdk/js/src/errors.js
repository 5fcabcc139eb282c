/** The few, flat errors of the SDK (mirroring grasp_sdk/errors.py). */

/** Base of every error the SDK throws on purpose. */
export class GraspSDKError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The protection service answered with an error it means (a 4xx/5xx JSON error body). */
export class ServiceError extends GraspSDKError {
  /**
   * @param {string} kind the service's machine-readable error kind (e.g. `invalid_image`).
   * @param {string} message the service's human-readable message.
   * @param {number} status the HTTP status of the answer.
   */
  constructor(kind, message, status) {
    super(`${kind} (${status}): ${message}`);
    this.kind = kind;
    this.serviceMessage = message;
    this.status = status;
  }
}

/** No endpoint could take the image: unreachable, overloaded (429/502/503) after retries. */
export class ServiceUnavailable extends GraspSDKError {}

/** The protection did not finish within the client's total time budget. */
export class ProtectTimeout extends GraspSDKError {}

/** A compiled policy is invalid; the message names the source, the site and the field. */
export class PolicyError extends GraspSDKError {
  constructor(message, { source, site = null, field = null }) {
    let where = source;
    if (site !== null) where += `: site '${site}'`;
    if (field !== null) where += `: field '${field}'`;
    super(`${where}: ${message}`);
    this.source = source;
    this.site = site;
    this.field = field;
  }
}

/**
 * An image inside a matched upload could not be protected; the upload is left whole.
 * The caller applies the site's `onFailure`: `pass` sends the original, `block` refuses.
 */
export class RewriteError extends GraspSDKError {
  /**
   * @param {string} message
   * @param {{site: string, onFailure: "pass" | "block", cause?: unknown}} details
   */
  constructor(message, { site, onFailure, cause }) {
    super(`site '${site}': ${message}`, cause === undefined ? undefined : { cause });
    this.site = site;
    this.onFailure = onFailure;
  }
}

/**
 * A matched upload carries an image the hook cannot rewrite (its body is signed, too big,
 * malformed, a piece of a split upload, or in a format the site's policy leaves out), and
 * the site's `onFailure` is `block`: it must not go as it is.
 */
export class UnprotectableUpload extends RewriteError {}

/**
 * The upload was refused: the photo could not be protected and the `on_failure` in force
 * is `block`. Thrown (or rejected) by `protectFile`, `protectRequestBody` and the wrapped
 * `fetch`, and reported through `onOutcome` by the patched XMLHttpRequest; `cause` says why.
 */
export class UploadBlockedError extends GraspSDKError {
  /**
   * @param {string | null} site the policy site whose `on_failure` is `block`, if any.
   * @param {unknown} cause what went wrong.
   */
  constructor(site, cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    const whose = site === null ? "" : ` (site '${site}' blocks unprotected photos)`;
    super(`upload refused${whose}: ${why}`, { cause });
    this.site = site;
  }
}
