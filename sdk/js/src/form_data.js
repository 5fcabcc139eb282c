/**
 * Protect the photos of a FormData before the browser serialises it: the entries that are
 * images (File entries by their bytes, text entries holding base64 of one) are replaced by
 * protected copies, every other entry and the order kept. The FormData counterpart of the
 * byte splice in multipart.js, for bodies whose boundary the browser has not chosen yet.
 */

import { decodeImageText } from "./base64_fields.js";
import { equal, utf8 } from "./bytes.js";
import { UnprotectableUpload } from "./errors.js";
import { CannotRewrite, LeaveAlone, protectSlots, requireFormat } from "./hook.js";
import { isChecksum } from "./multipart.js";
import { nameMatches } from "./patterns.js";
import { carriesImage, imageType } from "./sniff.js";

const SLICE = 1 << 20;  // bytes of a large file entry looked at at once
const SLICE_OVERLAP = 8 << 10;  // more than carriesImage reads after an image's start (4 KB)

/**
 * What `protectFormData` did.
 * @typedef {object} FormDataRewrite
 * @property {FormData} formData a new FormData with protected photos, or the original.
 * @property {boolean} changed whether any entry was replaced.
 * @property {import("./hook.js").ImageReport[]} images one report per image found.
 * @property {string} reason what was done, or why the FormData was left alone.
 */

/**
 * Protect the image entries of `formData` per one site's rule.
 * @param {FormData} formData
 * @param {{site: import("./policy.js").SiteRule, protect: import("./client.js").ProtectFn}} context
 *   the rule of the site it goes to (`policy.match(method, url)` or `policy.get(name)`) and
 *   how to protect one image.
 * @returns {Promise<FormDataRewrite>}
 * @throws {import("./errors.js").RewriteError} an image could not be protected: apply
 *   `error.onFailure`; on a `block` site, an UnprotectableUpload when the form carries an
 *   image it cannot rewrite (signed, too big, a checksum of its file, an incomplete image).
 */
export async function protectFormData(formData, { site: rule, protect }) {
  try {
    return await rewriteFormData(formData, rule, protect);
  } catch (error) {
    if (error instanceof CannotRewrite && rule.onFailure === "block" && await formCarriesImage(formData, rule.maxBytes)) {
      throw new UnprotectableUpload(`the image this form carries cannot be protected: ${error.why}`,
        { site: rule.name, onFailure: rule.onFailure });
    }
    if (error instanceof LeaveAlone) return { formData, changed: false, images: [], reason: error.message };
    throw error;
  }
}

/**
 * Whether any entry of the form carries an image, as carriesImage reads a body: text, or a
 * file read whole when it is no larger than `limit` bytes, else in slices of SLICE bytes
 * (each overlapping the one before by SLICE_OVERLAP, more than carriesImage reads after an
 * image's start), as grasp_sdk scans a whole multipart body.
 */
export async function formCarriesImage(formData, limit) {
  for (const [, value] of formData.entries()) {
    if (typeof value === "string") {
      if (carriesImage(utf8(value))) return true;
    } else if (value.size <= limit) {
      if (carriesImage(new Uint8Array(await value.arrayBuffer()))) return true;
    } else {
      for (let at = 0; at < value.size; at += SLICE - SLICE_OVERLAP) {
        if (carriesImage(new Uint8Array(await value.slice(at, at + SLICE).arrayBuffer()))) return true;
        if (at + SLICE >= value.size) break;
      }
    }
  }
  return false;
}

async function rewriteFormData(formData, rule, protect) {
  const entries = [...formData.entries()];
  if (entries.length === 0) throw new LeaveAlone("empty body");
  if (rule.signed) throw new CannotRewrite("the policy marks this site's uploads as signed");
  const size = entries.reduce((n, [, v]) => n + (typeof v === "string" ? v.length : v.size), 0);
  if (size > rule.maxBytes) throw new CannotRewrite(`body of about ${size} bytes exceeds max_bytes ${rule.maxBytes}`);
  requireFormat(rule, "multipart");
  const slots = [];
  for (const [index, [name, value]] of entries.entries()) {
    if (rule.fields.length && !nameMatches(name, rule.fields)) continue;
    const slot = await imageSlot(name, value);
    if (slot !== null) slots.push({ ...slot, index });
  }
  if (slots.length === 0) {  // none where the policy looks; one elsewhere still goes as it is
    throw new CannotRewrite("no image in the body", "not in a field or format the site's policy protects");
  }
  const pinned = entries.filter(([name]) => isChecksum(name)).map(([name]) => `'${name}'`);
  if (pinned.length) throw new CannotRewrite(`the form carries a checksum of its file (${pinned.join(", ")})`);
  const results = await protectSlots(rule, slots, rule.options(), protect);
  const images = slots.map((slot, i) => ({
    location: slot.location,
    mediaType: slot.mediaType,
    originalBytes: slot.data.length,
    protectedBytes: results[i].data.length,
    report: results[i].report,
  }));
  const replaced = new Map();
  slots.forEach((slot, i) => {
    if (!equal(results[i].data, slot.data)) replaced.set(slot.index, slot.replacement(results[i].data));
  });
  if (replaced.size === 0) {
    return { formData, changed: false, images, reason: "no image needed protection (no face found)" };
  }
  const out = new FormData();
  entries.forEach(([name, value], index) => {
    const entry = replaced.get(index) ?? value;
    if (typeof entry === "string") out.append(name, entry);
    else out.append(name, entry, entry.name);
  });
  return { formData: out, changed: true, images, reason: `protected ${replaced.size} of ${slots.length} image(s)` };
}

/** The slot of one entry if it holds an image, with how to make its replacement entry. */
async function imageSlot(name, value) {
  const location = `multipart part '${name}'`;
  if (typeof value !== "string") {
    const data = new Uint8Array(await value.arrayBuffer());
    const mediaType = imageType(data);
    if (mediaType === null) return null;
    return {
      location, data, mediaType,
      replacement: (image) => new File([image], value.name, { type: value.type, lastModified: value.lastModified }),
    };
  }
  const decoded = decodeImageText(value);
  if (decoded === null) return null;
  return {
    location,
    data: decoded.data,
    mediaType: imageType(decoded.data) ?? "application/octet-stream",
    replacement: (image) => decoded.style.encode(image),
  };
}
