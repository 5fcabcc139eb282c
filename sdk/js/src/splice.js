/**
 * Images found inside a request body, and the byte edits that put protected ones back
 * (the port of grasp_sdk/splice.py). Every body format reduces to byte ranges of the
 * original body to replace; everything outside them stays identical.
 */

import { concat } from "./bytes.js";

/** A body that does not parse as its declared format; the upload is left untouched. */
export class MalformedBody extends Error {
  constructor(message) {
    super(message);
    this.name = "MalformedBody";
  }
}

/**
 * A body that carries a checksum of its image the SDK cannot recompute (a form's checksum
 * field, a part's Content-MD5); the upload is left untouched.
 */
export class PinnedBody extends Error {
  constructor(message) {
    super(message);
    this.name = "PinnedBody";
  }
}

/**
 * One image inside a body.
 * @typedef {object} ImageSlot
 * @property {string} location where it is, for reports (`multipart part 'media'`).
 * @property {Uint8Array} data the image bytes (decoded, when the body carries them encoded).
 * @property {string} mediaType the image type sniffed from `data`.
 * @property {(image: Uint8Array) => Edit[]} edits the body edits that put a replacement here.
 */

/**
 * Replace `body[start:end]` with `data`.
 * @typedef {{start: number, end: number, data: Uint8Array}} Edit
 */

/** `body` with non-overlapping `edits` applied; throws RangeError if they overlap. */
export function applyEdits(body, edits) {
  const sorted = [...edits].sort((a, b) => a.start - b.start || a.end - b.end);
  const out = [];
  let pos = 0;
  for (const edit of sorted) {
    if (edit.start < pos || edit.end < edit.start || edit.end > body.length) {
      throw new RangeError(`bad or overlapping edit ${edit.start}:${edit.end}`);
    }
    out.push(body.subarray(pos, edit.start), edit.data);
    pos = edit.end;
  }
  out.push(body.subarray(pos));
  return concat(out);
}
