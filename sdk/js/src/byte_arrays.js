/**
 * Images carried as JSON arrays of byte values (the port of grasp_sdk/byte_arrays.py):
 * `[255, 216, 255, …]`, as Dart's `jsonEncode` writes a `Uint8List` and
 * `JSON.stringify(Array.from(bytes))` a `Uint8Array`, or signed `[-1, -40, -1, …]`, as Gson
 * and kotlinx write a `byte[]`. A replacement is written the same way: signed or not, with
 * the array's own spacing.
 */

import { byteValues, imageType } from "./sniff.js";

const INTEGER = "-?(?:0|[1-9]\\d{0,2})";
// The first 16 values: enough for imageType, and all of an array not an image's read here;
// an image's is then read by a loop and JSON.parse (a regex over a photo's megabytes of
// values runs out of stack).
const HEAD = new RegExp(`\\[(\\s*)${INTEGER}(\\s*,\\s*)${INTEGER}(?:\\s*,\\s*${INTEGER}){14}`, "y");
const VALUE = /-?\d+/g;

/** How one image was written as a JSON array, to write its replacement the same way. */
export class ByteArray {
  /**
   * @param {object} style
   * @param {boolean} style.signed byte values from -128 to 127 (Java's `byte`), not 0 to 255.
   * @param {string} style.opening the whitespace after `[`.
   * @param {string} style.separator what stands between two values, as between the first two.
   * @param {string} style.closing the whitespace before `]`.
   */
  constructor({ signed, opening, separator, closing }) {
    Object.assign(this, { signed, opening, separator, closing });
    Object.freeze(this);
  }

  /** `data` as a JSON array in this style. */
  encode(data) {
    const values = Array.from(data, (b) => (this.signed && b > 127 ? b - 256 : b));
    return `[${this.opening}${values.join(this.separator)}${this.closing}]`;
  }
}

/**
 * The end, style and bytes of the JSON array at `text[i]` when it is an image's byte
 * values; null when it is not (its first 16 values are no image's start, a value is no
 * byte, or one is no integer: the generic scan then reads it).
 * @returns {{end: number, style: ByteArray, data: Uint8Array} | null}
 */
export function imageArrayAt(text, i) {
  HEAD.lastIndex = i;
  const head = HEAD.exec(text);
  if (head === null) return null;
  const start = byteValues(head[0].match(VALUE).map(Number));
  if (start === null || imageType(start) === null) return null;
  const end = arrayEnd(text, i);
  if (end === null) return null;
  let values;
  try {
    values = JSON.parse(text.slice(i, end));
  } catch {
    return null;  // the generic scan says what is wrong
  }
  if (!values.every(Number.isInteger)) return null;
  const data = byteValues(values);
  if (data === null) return null;
  let close = end - 1;
  while (" \t\r\n".includes(text[close - 1])) close -= 1;
  const style = new ByteArray({ signed: values.some((v) => v < 0), opening: head[1], separator: head[2], closing: text.slice(close, end - 1) });
  return { end, style, data };
}

/** One past the `]` of an array of numbers at `text[i]` (digits, signs, commas, spaces), or null. */
function arrayEnd(text, i) {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x5d) return j + 1;  // ]
    const number = (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2c;  // 0-9 - ,
    if (!number && c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return null;
  }
  return null;
}
