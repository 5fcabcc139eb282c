// Images as base64 text in JSON and forms: recognised in every style, written back alike,
// only the token or the value changing.

import assert from "node:assert/strict";
import { test } from "node:test";

import { decodeImageText, findFormImages, findJsonImages } from "../index.js";
import { requote } from "../src/base64_fields.js";
import { fromUtf8, latin1, toBase64, utf8 } from "../src/bytes.js";
import { MalformedBody, applyEdits } from "../src/splice.js";
import { JPEG, asciiJson, flip, quoteBytes } from "./helpers.js";

const B64 = toBase64(JPEG);

test("every style decodes and encodes back to the same text", () => {
  const urlsafe = B64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  const wrapped = B64.match(/.{1,76}/g).join("\r\n") + "\r\n";
  for (const text of [B64, `data:image/jpeg;base64,${B64}`, `DATA:image/jpeg;name=a.jpg;base64,${B64}`, urlsafe, wrapped]) {
    const decoded = decodeImageText(text);
    assert.ok(decoded, text.slice(0, 30));
    assert.deepEqual(decoded.data, JPEG);
    assert.equal(decoded.style.encode(JPEG), text);
  }
});

test("one line and its end stays one line, whatever the new length", () => {
  for (const end of ["\n", "\r\n"]) {
    const { style } = decodeImageText(toBase64(JPEG) + end);  // `base64 -w0; echo`
    const longer = new Uint8Array([...JPEG, ...new Uint8Array(30)]);
    assert.equal(style.encode(longer), toBase64(longer) + end);
  }
});

test("text that is not base64 of an image is not one", () => {
  for (const text of ["", "short", toBase64(utf8("not an image at all, just some words")), `${B64.slice(0, 40)}+-${B64.slice(42)}`, `${B64}=`]) {
    assert.equal(decodeImageText(text), null);
  }
});

test("JSON: only the string token changes; escaped slashes, key filter and depth", () => {
  const text = `{ "n\u00e9": "caf\u00e9", "user": {"avatar": "data:image\\/jpeg;base64,${B64.replaceAll("/", "\\/")}"},\n "list": ["${B64}", 1, null] }`;
  const body = utf8(text);
  const slots = findJsonImages(body);
  assert.deepEqual(slots.map((s) => s.location), ["json $.user.avatar", "json $.list[0]"]);
  const out = fromUtf8(applyEdits(body, slots.flatMap((s) => s.edits(flip(JPEG)))));
  const flipped = toBase64(flip(JPEG));
  assert.equal(out, `{ "n\u00e9": "caf\u00e9", "user": {"avatar": "data:image\\/jpeg;base64,${flipped.replaceAll("/", "\\/")}"},\n "list": ["${flipped}", 1, null] }`);
  assert.deepEqual(findJsonImages(body, ["av*"]).map((s) => s.location), ["json $.user.avatar"]);
  assert.deepEqual(findJsonImages(body, ["list"]).map((s) => s.location), ["json $.list[0]"]);
});

test("JSON that does not parse is malformed", () => {
  for (const text of ['{"a": 1', '{"a": 1} x', "{'a': 1}", '{"a": tru}', "[1,]", '"\u0001"']) {
    assert.throws(() => findJsonImages(utf8(text)), MalformedBody, text);
  }
  assert.throws(() => findJsonImages(new Uint8Array([0x7b, 0xff, 0x7d])), MalformedBody);
});

test("forms: only the value changes, percent-encoded as the client did", () => {
  const lower = encodeURIComponent(B64).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
  const body = utf8(`command=APPEND&media_data=${lower}&note=a+b`);
  const [slot] = findFormImages(body, ["media_data"]);
  assert.equal(slot.location, "form field 'media_data'");
  const out = latin1(applyEdits(body, slot.edits(flip(JPEG))));
  const expected = encodeURIComponent(toBase64(flip(JPEG))).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
  assert.equal(out, `command=APPEND&media_data=${expected}&note=a+b`);
  assert.deepEqual(findFormImages(body, ["other"]), []);
});

test("requote keeps what the original left literal and escapes the rest", () => {
  assert.equal(requote("a/b%2B", "x/y+z="), "x/y%2Bz%3D");
  assert.equal(requote("%2f", "/+"), "%2f%2b");
  assert.equal(requote("name%3Dphoto-%C3%A9.jpg", "name=photo-é.jpg"), "name%3Dphoto-%C3%A9.jpg");
  assert.equal(requote("x", "é"), "%C3%A9");  // past ASCII: its UTF-8 bytes, as a form writes them
});

test("URL-safe text without padding stays so, whatever the new length", () => {
  const whole = new Uint8Array(JPEG.length + (3 - (JPEG.length % 3)) % 3);  // no padding to tell
  whole.set(JPEG);
  const text = toBase64(whole).replaceAll("+", "-").replaceAll("/", "_");
  assert.ok(text.length % 4 === 0 && !text.includes("="));
  const { style } = decodeImageText(text);
  assert.ok(!style.encode(whole.subarray(0, whole.length - 1)).includes("="));
});

test("text shows whether its writer pads only by its end or its length", () => {
  for (const extra of [0, 1, 2]) {
    const photo = new Uint8Array([...JPEG, ...new Uint8Array(extra)]);
    const padded = toBase64(photo, true);
    const hidden = photo.length % 3 === 0;
    assert.equal(decodeImageText(padded).style.paddingShown, !hidden);
    assert.equal(decodeImageText(padded.replace(/=+$/, "")).style.paddingShown, !hidden);
    assert.equal(decodeImageText(toBase64(photo)).style.paddingShown, true);  // standard writers pad
  }
});

test("JSON after a byte-order mark", () => {
  const body = new Uint8Array([0xef, 0xbb, 0xbf, ...utf8(JSON.stringify({ caption: "café", photo: toBase64(JPEG) }))]);
  const [slot] = findJsonImages(body);
  const out = applyEdits(body, slot.edits(flip(JPEG)));
  assert.deepEqual([...out.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  assert.equal(JSON.parse(fromUtf8(out.subarray(3))).photo, toBase64(flip(JPEG)));
});

// JSON written inside a JSON string or a form value (as tests/sdk/test_base64_fields.py checks of grasp_sdk)

const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, ...utf8("IHDR"), ...new Uint8Array(17)]);
const NEW = flip(JPEG);
/** Python's json.dumps: every character past ASCII as a \u escape (astral ones as two). */
const phpJson = (value) => asciiJson(value).replaceAll("/", "\\/");  // PHP's json_encode escapes slashes
/** How JSON is written outside and inside: [outer, inner]. */
const writers = {
  "\\u escapes": [asciiJson, asciiJson],
  "raw UTF-8": [JSON.stringify, JSON.stringify],
  "escaped slashes": [phpJson, phpJson],
  "raw UTF-8 inside \\u escapes": [asciiJson, JSON.stringify],
};

for (const [name, [dumps, innerDumps]] of Object.entries(writers)) {
  test(`JSON written inside a JSON string is read, the photos put back through its escapes (${name})`, () => {
    const inner = {
      caption: "café ☕ 😀 \"quoted\"", photo: toBase64(JPEG), bytes: Array.from(JPEG),
      more: { list: [1, `data:image/png;base64,${toBase64(PNG)}`] },
    };
    const text = dumps({ id: "é😀", payload: innerDumps(inner), n: 2 });
    const body = utf8(text);
    const slots = findJsonImages(body);
    assert.deepEqual(slots.map((s) => s.location), ["json $.payload → json $.photo", "json $.payload → json $.bytes",
      "json $.payload → json $.more.list[1]"]);
    assert.deepEqual(slots.map((s) => s.data), [JPEG, JPEG, PNG]);
    const out = fromUtf8(applyEdits(body, slots.flatMap((s) => s.edits(NEW))));
    const outer = JSON.parse(out);
    assert.deepEqual(JSON.parse(outer.payload), {
      ...inner, photo: toBase64(NEW), bytes: Array.from(NEW), more: { list: [1, `data:image/png;base64,${toBase64(NEW)}`] },
    });
    assert.deepEqual([outer.id, outer.n], ["é😀", 2]);
    // only the images' text changes, written as the writers wrote it
    const twice = (value) => dumps(innerDumps(value)).slice(3, -3);
    const array = (data) => JSON.stringify(Array.from(data));
    assert.equal(out, text.replace(twice(toBase64(JPEG)), twice(toBase64(NEW))).replace(array(JPEG), array(NEW))
      .replace(twice(toBase64(PNG)), twice(toBase64(NEW))));
  });
}

test("JSON inside JSON inside JSON is read, three levels down and no further", () => {
  const innermost = JSON.stringify({ image: toBase64(JPEG) });
  const body = utf8(JSON.stringify({ rpc: [["upload", JSON.stringify({ args: innermost })]] }));
  const [slot] = findJsonImages(body);
  assert.equal(slot.location, "json $.rpc[0][1] → json $.args → json $.image");
  const out = JSON.parse(fromUtf8(applyEdits(body, slot.edits(NEW))));
  assert.deepEqual(JSON.parse(JSON.parse(out.rpc[0][1]).args), { image: toBase64(NEW) });
  const nested = (levels) => {
    let text = JSON.stringify({ image: toBase64(JPEG) });
    for (let i = 0; i < levels; i++) text = JSON.stringify({ [`k${i}`]: text });
    return utf8(text);
  };
  assert.equal(findJsonImages(nested(3)).length, 1);
  assert.deepEqual(findJsonImages(nested(4)), []);
});

test("4000 photos in JSON inside a JSON string, past ASCII, are found and put back in linear time", () => {
  // each inner edit's place was found by decoding the inner text up to it: tens of seconds
  const photos = Array.from({ length: 4000 }, (_, i) => ({ name: `é 中 ${i} \ud83d\ude00`, photo: toBase64(JPEG) }));
  const body = utf8(JSON.stringify({ note: "naïve", payload: JSON.stringify({ photos }) }));
  const started = performance.now();
  const slots = findJsonImages(body);
  const out = applyEdits(body, slots.flatMap((s) => s.edits(NEW)));
  const took = performance.now() - started;
  assert.equal(slots.length, 4000);
  assert.equal(slots[3999].location, "json $.payload → json $.photos[3999].photo");
  const expected = photos.map((p) => ({ ...p, photo: toBase64(NEW) }));
  assert.deepEqual(JSON.parse(JSON.parse(fromUtf8(out)).payload), { photos: expected });
  assert.ok(took < 5000, `${Math.round(took)} ms`);  // under a second here; 30 s before
});

test("a field name reaches into JSON inside a string: the string's key, or the inner key", () => {
  const body = utf8(JSON.stringify({ payload: JSON.stringify({ photo: toBase64(JPEG) }) }));
  for (const [fields, found] of [[[], 1], [["payload"], 1], [["photo"], 1], [["other"], 0]]) {
    assert.equal(findJsonImages(body, fields).length, found, String(fields));
  }
});

test("a string that only looks like JSON is text", () => {
  const photo = toBase64(JPEG);
  for (const text of ["{not json", "[1, 2", "{} trailing", '{"a": "\\ud83d"}', `{"a": "\ud83d", "photo": "${photo}"}`]) {
    assert.deepEqual(findJsonImages(utf8(JSON.stringify({ note: text }))), [], text);
  }
  assert.equal(findJsonImages(utf8(JSON.stringify({ note: `{"a": "\ud83d\ude00", "photo": "${photo}"}` }))).length, 1);
});

const quoting = {
  "URLSearchParams (+ for a space)": (value) => new URLSearchParams({ v: value }).toString().slice(2),
  "encodeURIComponent, / kept": (value) => encodeURIComponent(value).replaceAll("%2F", "/"),
  "JSON's punctuation kept": (value) => encodeURIComponent(value).replace(/%(7B|7D|22|3A|2C)/g, (m) => decodeURIComponent(m)),
  "lower-case hex": (value) => encodeURIComponent(value).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
};

for (const [name, quote] of Object.entries(quoting)) {
  test(`JSON written in a form value is read, the photo put back percent-encoded alike (${name})`, () => {
    const payload = JSON.stringify({ name: "été 😀", photo: toBase64(JPEG) });
    const text = `a=1&data=${quote(payload)}&z=%C3%A9`;
    const body = utf8(text);
    const [slot, ...rest] = findFormImages(body);
    assert.deepEqual(rest, []);
    assert.equal(slot.location, "form field 'data' → json $.photo");
    assert.deepEqual(slot.data, JPEG);
    const out = latin1(applyEdits(body, slot.edits(NEW)));
    assert.deepEqual(JSON.parse(new URLSearchParams(out).get("data")), { name: "été 😀", photo: toBase64(NEW) });
    assert.equal(out, text.replace(quote(toBase64(JPEG)), quote(toBase64(NEW))));
    assert.deepEqual(findFormImages(body, ["photo"]).length, 1);
    assert.deepEqual(findFormImages(body, ["name"]), []);
  });
}

/** The fields of a form, each value's bytes as latin-1 (Python's parse_qsl(encoding="latin-1")). */
const formFields = (text) => Object.fromEntries(text.split("&").map((pair) => pair.split("=").map((part) =>
  part.replaceAll("+", " ").replace(/%([0-9A-Fa-f]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16))))));

const quotingBytes = {
  "urlencode, as requests' data={...} writes it": (data) => quoteBytes(data, "+"),
  "lower-case hex": (data) => quoteBytes(data).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
};

for (const [name, quote] of Object.entries(quotingBytes)) {
  test(`an image's own bytes percent-encoded in a form are found, and put back percent-encoded alike (${name})`, () => {
    const body = utf8(`caption=me&photo=${quote(JPEG)}`);
    const slots = findFormImages(body, ["photo"]);
    assert.deepEqual(slots.map((s) => [s.location, s.data, s.mediaType]), [["form field 'photo'", JPEG, "image/jpeg"]]);
    const out = latin1(applyEdits(body, slots[0].edits(NEW)));
    assert.deepEqual(formFields(out), { caption: "me", photo: latin1(NEW) });
    assert.ok(out.startsWith("caption=me&photo="));
    assert.equal(/%[a-f]/.test(out), /%[a-f]/.test(latin1(body)));  // its hex case
    assert.deepEqual(findFormImages(body, ["caption"]), []);
  });
}
