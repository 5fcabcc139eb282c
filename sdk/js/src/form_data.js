/**
 * Protect the photos of a FormData before the browser serialises it: the entries that are
 * images (File entries by their bytes, text or File entries holding base64 of one) or JSON
 * documents holding images (read as a multipart part is) are replaced by protected copies,
 * every other entry and the order kept. The FormData counterpart of the byte splice in
 * multipart.js, for bodies whose boundary the browser has not chosen yet.
 */

import { decodeImageText } from "./base64_fields.js";
import { equal, fromUtf8, utf8 } from "./bytes.js";
import { UnprotectableUpload } from "./errors.js";
import { headerTokens, normalise } from "./headers.js";
import { CannotRewrite, LeaveAlone, digestStatedBeside, outside, protectSlots, requireFormat } from "./hook.js";
import { decodeImageContent, isChecksum, jsonContentImages } from "./multipart.js";
import { nameMatches } from "./patterns.js";
import { carriesImage, imageType } from "./sniff.js";
import { applyEdits } from "./splice.js";

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
 * @param {{site: import("./policy.js").SiteRule, protect: import("./client.js").ProtectFn,
 *   headers?: HeadersInit | [string, string][], url?: string}} context the rule of the site
 *   it goes to (`policy.match(method, url)` or `policy.get(name)`), how to protect one image,
 *   and the request's headers and URL, which may state the digest of an image.
 * @returns {Promise<FormDataRewrite>}
 * @throws {import("./errors.js").RewriteError} an image could not be protected: apply
 *   `error.onFailure`; on a `block` site, an UnprotectableUpload when the form carries an
 *   image it cannot rewrite (signed, too big, a checksum or digest of its file, an
 *   incomplete image).
 */
export async function protectFormData(formData, { site: rule, protect, headers = [], url = "" }) {
  try {
    return await rewriteFormData(formData, rule, protect, headerTokens(normalise(headers), url));
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
    if (await entryCarriesImage(value, limit)) return true;
  }
  return false;
}

/** Whether one entry's value carries an image (formCarriesImage's reading). */
async function entryCarriesImage(value, limit) {
  if (typeof value === "string") return carriesImage(utf8(value));
  if (value.size <= limit) return carriesImage(new Uint8Array(await value.arrayBuffer()));
  for (let at = 0; at < value.size; at += SLICE - SLICE_OVERLAP) {
    if (carriesImage(new Uint8Array(await value.slice(at, at + SLICE).arrayBuffer()))) return true;
    if (at + SLICE >= value.size) break;
  }
  return false;
}

/**
 * Whether the form carries an image besides those its `holders` hold (the entries
 * outside the policy's fields or formats, and what an entry holds beside its images).
 */
async function carriesImageOutside(entries, holders, limit) {
  for (const [index, [, value]] of entries.entries()) {
    const held = holders.get(index);
    if (held === undefined) {
      if (await entryCarriesImage(value, limit)) return true;
      continue;
    }
    const rest = outside(held.content, held.slots);
    if (rest === null || carriesImage(rest)) return true;  // its images cannot be cut out: doubt refuses
  }
  return false;
}

/**
 * What the form sends beside the images its `holders` hold, as the rest of its multipart
 * body reads: each entry's name, a file's name, and its content with those images cut out.
 */
async function besideImages(entries, holders) {
  const texts = [];
  for (const [index, [name, value]] of entries.entries()) {
    const held = holders.get(index);
    const rest = held ? outside(held.content, held.slots) : await contentOf(value);
    texts.push(name, rest ?? "");
    if (typeof value !== "string") texts.push(value.name);
  }
  return texts;
}

async function rewriteFormData(formData, rule, protect, elsewhere) {
  const entries = [...formData.entries()];
  if (entries.length === 0) throw new LeaveAlone("empty body");
  if (rule.signed) throw new CannotRewrite("the policy marks this site's uploads as signed");
  const size = entries.reduce((n, [, v]) => n + (typeof v === "string" ? v.length : v.size), 0);
  if (size > rule.maxBytes) throw new CannotRewrite(`body of about ${size} bytes exceeds max_bytes ${rule.maxBytes}`);
  requireFormat(rule, "multipart");
  const holders = new Map();  // entry index → the images it holds
  for (const [index, [name, value]] of entries.entries()) {
    const held = await entryImages(name, value, rule.fields);
    if (held !== null) holders.set(index, held);
  }
  const slots = [...holders.values()].flatMap((held) => held.slots);
  if (slots.length === 0) {  // none where the policy looks; one elsewhere still goes as it is
    throw new CannotRewrite("no image in the body", "not in a field or format the site's policy protects");
  }
  const pinned = entries.filter(([name]) => isChecksum(name)).map(([name]) => `'${name}'`);
  if (pinned.length) throw new CannotRewrite(`the form carries a checksum of its file (${pinned.join(", ")})`);
  const stated = await digestStatedBeside(slots, null, await besideImages(entries, holders), elsewhere);
  if (stated) throw new CannotRewrite(stated);
  if (rule.onFailure === "block" && await carriesImageOutside(entries, holders, rule.maxBytes)) {
    throw new CannotRewrite("an image outside the fields and formats the site's policy protects goes with the ones it does");
  }
  const results = await protectSlots(rule, slots, rule.options(), protect);
  const images = slots.map((slot, i) => ({
    location: slot.location,
    mediaType: slot.mediaType,
    originalBytes: slot.data.length,
    protectedBytes: results[i].data.length,
    report: results[i].report,
  }));
  const protectedData = new Map(slots.map((slot, i) => [slot, results[i].data]));
  const changed = new Set(slots.filter((slot) => !equal(protectedData.get(slot), slot.data)));
  const replaced = new Map();  // entry index → its new value
  for (const [index, held] of holders) {
    const edits = held.slots.filter((slot) => changed.has(slot)).flatMap((slot) => slot.edits(protectedData.get(slot)));
    if (edits.length) replaced.set(index, held.rebuild(applyEdits(held.content, edits)));
  }
  if (changed.size === 0) {
    return { formData, changed: false, images, reason: "no image needed protection (no face found)" };
  }
  const out = new FormData();
  entries.forEach(([name, value], index) => {
    const entry = replaced.get(index) ?? value;
    if (typeof entry === "string") out.append(name, entry);
    else out.append(name, entry, entry.name);
  });
  return { formData: out, changed: true, images, reason: `protected ${changed.size} of ${slots.length} image(s)` };
}

/**
 * The images one entry holds, as edits of its content, and how to make the entry anew from
 * new content; null when it holds none. A file is an image by its bytes or base64, a text by
 * its base64; either may be a JSON document holding images, as a multipart part is read (a
 * name `fields` does not match is read for the inner keys it does).
 * @returns {Promise<{content: Uint8Array, slots: import("./splice.js").ImageSlot[],
 *   rebuild: (content: Uint8Array) => string | File} | null>}
 */
async function entryImages(name, value, fields) {
  const wanted = !fields.length || nameMatches(name, fields);
  const text = typeof value === "string";
  const content = await contentOf(value);
  const whole = wanted ? wholeImage(`multipart part '${name}'`, value, content) : null;
  const slots = whole ? [whole] : jsonContentImages(content, name, wanted ? [] : fields);
  if (slots.length === 0) return null;
  const rebuild = text ? fromUtf8 : (bytes) => new File([bytes], value.name, { type: value.type, lastModified: value.lastModified });
  return { content, slots, rebuild };
}

/** An entry's content: a text's UTF-8, a file's bytes. */
async function contentOf(value) {
  return typeof value === "string" ? utf8(value) : new Uint8Array(await value.arrayBuffer());
}

/**
 * The slot of an entry that is an image, or null: a file by its bytes, else by its base64 (a
 * text, or a file of ASCII text as a multipart part is read), written back the same way.
 */
function wholeImage(location, value, content) {
  const replaced = (encode) => (image) => [{ start: 0, end: content.length, data: encode(image) }];
  const text = typeof value === "string";
  const mediaType = text ? null : imageType(content);
  if (mediaType !== null) return { location, data: content, mediaType, edits: replaced((image) => image) };
  const decoded = text ? decodeImageText(value) : decodeImageContent(content);
  if (decoded === null) return null;
  return {
    location,
    data: decoded.data,
    mediaType: imageType(decoded.data) ?? "application/octet-stream",
    edits: replaced((image) => utf8(decoded.style.encode(image))),
    exactSize: !decoded.style.paddingShown,
  };
}
