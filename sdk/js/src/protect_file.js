/** Protect one photo file the user chose, before the page reads or sends it. */

import { equal } from "./bytes.js";
import { GraspSDKError, PolicyError, UploadBlockedError } from "./errors.js";
import { contractProblem } from "./hook.js";
import { ProtectOptions } from "./options.js";
import { protectFnOf } from "./protect_fn.js";
import { imageType, isComplete } from "./sniff.js";

const SNIFF_BYTES = 256;  // all that imageType reads

/**
 * What `protectFile` did.
 * @typedef {object} FileOutcome
 * @property {File | Blob} file the protected file (same name, type and date), or the original.
 * @property {boolean} protected whether `file` is a protected copy.
 * @property {string} reason what was done, or why the original is returned.
 * @property {string | null} site the policy site the options came from, if any.
 * @property {Record<string, unknown> | null} report the service's report, when it answered.
 * @property {Error | null} error the failure behind an original returned under `pass`.
 */

/**
 * Protect one photo. A file that is not an image (by its bytes), or in which the service
 * found no face, comes back as is, with the reason. When protection fails, or the photo
 * cannot be protected (over the site's max_bytes, incomplete), `on_failure` decides: `pass`
 * returns the original with the reason, `block` throws UploadBlockedError.
 *
 * @param {File | Blob} file the photo.
 * @param {object} options
 * @param {string | string[]} [options.service] the service's URL(s), unless `protect` is given.
 * @param {string} [options.token] its bearer token.
 * @param {typeof fetch} [options.fetch] the fetch the client uses.
 * @param {import("./client.js").ProtectFn} [options.protect] protects one image instead of a client.
 * @param {import("./policy.js").Policy} [options.policy] with `site`: the site's options and on_failure.
 * @param {string} [options.site] the policy site the photo goes to (sent to the service as `site`).
 * @param {string} [options.preset] `fast` | `balanced` | `strong` (default: the site's, else balanced).
 * @param {string} [options.sizeMode] without a policy: `any` | `max` | `exact`.
 * @param {string} [options.onNoFace] without a policy: `skip` | `whole`.
 * @param {"pass" | "block"} [options.onFailure] default: the site's, else `pass`.
 * @returns {Promise<FileOutcome>}
 * @throws {UploadBlockedError} protection failed and `on_failure` is `block`.
 */
export async function protectFile(file, options = {}) {
  const { policy = null, site = null, preset, sizeMode, onNoFace } = options;
  const rule = policy !== null && site !== null ? policy.get(site) : null;
  if (policy !== null && site !== null && rule === null) {
    throw new PolicyError("no such site in the policy", { source: policy.source, site });
  }
  const onFailure = options.onFailure ?? rule?.onFailure ?? "pass";
  const protectOptions = rule !== null ? rule.options({ preset })
    : new ProtectOptions({ preset, sizeMode, onNoFace, site: site ?? undefined });
  const protect = protectFnOf(options);
  const original = (reason, extra = {}) =>
    ({ file, protected: false, reason, site, report: null, error: null, ...extra });

  /**
   * A photo that cannot be protected: refused under `block`; under `pass` the original, with
   * the failure as its `error`, so that the caller says it goes unprotected.
   */
  const unprotectable = (reason) => {
    const error = new GraspSDKError(reason);
    if (onFailure === "block") throw new UploadBlockedError(site, error);
    return original(reason, { error });
  };

  // Magic bytes and size first: a video chosen beside a photo is never read whole.
  let data;
  try {
    if (imageType(new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer())) === null) {
      return original("not an image (by its bytes)");
    }
    if (rule !== null && file.size > rule.maxBytes) {
      return unprotectable(`${file.size} bytes exceeds max_bytes ${rule.maxBytes}`);
    }
    data = new Uint8Array(await file.arrayBuffer());
  } catch (error) {  // changed on disk, or a folder: the page cannot read it either
    if (error instanceof UploadBlockedError) throw error;
    return original(`could not be read: ${error.message}`);
  }
  const mediaType = imageType(data);
  if (mediaType === null) return original("not an image (by its bytes)");
  if (!isComplete(data, mediaType)) return unprotectable(`an incomplete ${mediaType}`);
  let result;
  try {
    result = await protect(data, protectOptions);
    const problem = contractProblem({ data, mediaType }, result.data, protectOptions.sizeMode);
    if (problem) throw new GraspSDKError(problem);
  } catch (error) {
    if (onFailure === "block") throw new UploadBlockedError(site, error);
    return original(`not protected, the original is kept: ${error.message}`, { error });
  }
  if (equal(result.data, data)) {
    return original(`unchanged: ${result.report.reason || "no face found"}`, { report: result.report });
  }
  const copy = typeof File === "function" && file instanceof File
    ? new File([result.data], file.name, { type: file.type, lastModified: file.lastModified })
    : new Blob([result.data], { type: file.type });
  return { file: copy, protected: true, reason: "protected", site, report: result.report, error: null };
}
