/**
 * Text as its container writes it: escaped inside a JSON string, percent-encoded in a form
 * value (the port of grasp_sdk/encoded_text.py). JSON travels inside such text (an API's
 * `payload` field that is itself a JSON document, sent as a string or a form value), and
 * inside that JSON, more. An image found in the inner JSON is put back by rewriting only
 * its own span, written with the same escapes: where each decoded character lies in the
 * container's text is known (offsets count the container's UTF-16 code units, as JS strings
 * do, so that levels compose), and new text is encoded the way the original was.
 */

import { fromUtf8 } from "./bytes.js";

const JSON_PIECES = /[^\\]+|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\["\\/bfnrt]/y;
const FORM_PIECES = /[^%+]+|\+|(?:%[0-9A-Fa-f]{2})+/y;

/**
 * One piece of a text: as its container writes it, as decoded, and whether it is its own
 * text (a literal run, where any place inside maps), not an escape.
 * @typedef {{raw: string, text: string, literal: boolean}} Piece
 */

/** A decoded text and where its characters lie in the container's text. */
export class EncodedText {
  #encode;
  #chars = [];  // where each piece starts in the text
  #outer = [];  // and in the container's text
  #literal = [];

  /**
   * @param {Piece[]} pieces the text's pieces, in order.
   * @param {number} start the container's offset of the first piece.
   * @param {(text: string) => string} encode writes new text the way this one was.
   */
  constructor(pieces, start, encode) {
    this.#encode = encode;
    let char = 0;
    let outer = start;
    for (const { raw, text, literal } of pieces) {
      this.#chars.push(char);
      this.#outer.push(outer);
      this.#literal.push(literal);
      char += text.length;
      outer += raw.length;
    }
    this.#chars.push(char);
    this.#outer.push(outer);
    this.#literal.push(false);
    /** The text as decoded. */
    this.text = pieces.map((piece) => piece.text).join("");
  }

  /**
   * The container's offset of the text's offset `char`; throws RangeError where `char`
   * falls inside an escape.
   */
  outerOffset(char) {
    let [low, high] = [0, this.#chars.length - 1];  // the last piece starting at or before char
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.#chars[middle] <= char) low = middle;
      else high = middle - 1;
    }
    const inside = char - this.#chars[low];
    if (inside && !this.#literal[low]) throw new RangeError(`character ${char} lies inside an escape`);
    return this.#outer[low] + inside;
  }

  /** `text` written the way this one was. */
  encode(text) {
    return this.#encode(text);
  }
}

/**
 * The text of a JSON string token's content `raw` (without its quotes), which starts at
 * offset `start` of its container; null if it is no valid string content.
 */
export function jsonString(raw, start) {
  const pieces = tiled(JSON_PIECES, raw);
  if (pieces === null) return null;
  const slashes = raw.includes("\\/");
  const encode = (text) => {
    const escaped = JSON.stringify(text).slice(1, -1);
    return slashes ? escaped.replaceAll("/", "\\/") : escaped;
  };
  return new EncodedText(pieces.map((p) => (p[0] === "\\"
    ? { raw: p, text: JSON.parse(`"${p}"`), literal: false }
    : { raw: p, text: p, literal: true })), start, encode);
}

/**
 * The text of a percent-encoded form value `raw` (ASCII, as sent), which starts at offset
 * `start` of its container; null if it does not decode as UTF-8. `encode` writes new text
 * the way `raw` was.
 */
export function formValue(raw, start, encode) {
  const pieces = tiled(FORM_PIECES, raw);
  if (pieces === null) return null;
  let decoded;
  try {
    decoded = pieces.flatMap(formPieces);
  } catch {  // escaped bytes that are not UTF-8
    return null;
  }
  return new EncodedText(decoded, start, encode);
}

/** The pieces of one form piece: a run of escaped bytes gives one per character, so each has its place. */
function formPieces(piece) {
  if (piece === "+") return [{ raw: piece, text: " ", literal: false }];
  if (piece[0] !== "%") return [{ raw: piece, text: piece, literal: true }];
  const out = [];
  let at = 0;
  for (const char of fromUtf8(Uint8Array.from(piece.slice(1).split("%"), (hex) => parseInt(hex, 16)))) {
    const code = char.codePointAt(0);
    const width = 3 * (code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4);  // %XX for each of its UTF-8 bytes
    out.push({ raw: piece.slice(at, at + width), text: char, literal: false });
    at += width;
  }
  return out;
}

/** `raw` cut into the pieces of `pattern` (a sticky regex) end to end, or null where they leave a gap. */
function tiled(pattern, raw) {
  const pieces = [];
  pattern.lastIndex = 0;
  while (pattern.lastIndex < raw.length) {
    const match = pattern.exec(raw);
    if (match === null) return null;
    pieces.push(match[0]);
  }
  return pieces;
}
