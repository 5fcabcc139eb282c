// Image types by their magic bytes, and whole images told from pieces.

import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { test } from "node:test";

import { carriesImage, imageType, isComplete } from "../index.js";
import { concat, fromBase64, latin1, toBase64, utf8 } from "../src/bytes.js";
import { JPEG, asciiJson, quoteBytes } from "./helpers.js";

const ftyp = (brand, compatible = []) => {
  const box = utf8(`....ftyp${brand}\0\0\0\0${compatible.join("")}`);
  new DataView(box.buffer).setUint32(0, box.length);
  return box;
};

test("magic bytes decide the type", () => {
  const cases = [
    [JPEG, "image/jpeg"],
    [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]), "image/png"],
    [utf8("GIF89a...."), "image/gif"],
    [utf8("RIFF\x10\0\0\0WEBPVP8 "), "image/webp"],
    [ftyp("heic"), "image/heic"],
    [ftyp("mif1", ["avif"]), "image/avif"],
    [ftyp("mif1", ["miaf"]), "image/heif"],
    [ftyp("isom", ["mp42"]), null],
    [utf8("<html>"), null],
    [new Uint8Array(0), null],
  ];
  for (const [data, expected] of cases) assert.equal(imageType(data), expected);
});

test("a whole JPEG is complete; its pieces are not", () => {
  assert.equal(isComplete(JPEG, "image/jpeg"), true);
  for (const end of [2, 20, 300, JPEG.length - 1]) assert.equal(isComplete(JPEG.subarray(0, end), "image/jpeg"), false, String(end));
});

test("PNG, GIF, WebP and BMFF pieces are told by their structure", () => {
  const chunk = (kind, length = 0) => concat([new Uint8Array([0, 0, 0, length]), utf8(kind), new Uint8Array(length + 4)]);
  const png = concat([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", 13), chunk("IEND")]);
  assert.equal(isComplete(png, "image/png"), true);
  assert.equal(isComplete(png.subarray(0, png.length - 3), "image/png"), false);
  assert.equal(isComplete(utf8("GIF89a...;\0\0"), "image/gif"), true);
  assert.equal(isComplete(utf8("GIF89a..."), "image/gif"), false);
  assert.equal(isComplete(utf8("RIFF\x04\0\0\0WEBP"), "image/webp"), true);
  assert.equal(isComplete(utf8("RIFF\x40\0\0\0WEBP"), "image/webp"), false);
  const heic = ftyp("heic");
  assert.equal(isComplete(heic, "image/heic"), true);
  assert.equal(isComplete(concat([heic, new Uint8Array([0, 0, 0, 16, 0x6d, 0x64, 0x61, 0x74])]), "image/heic"), false);
});

test("what follows a JPEG must be whole too: MPO frames, a motion photo's video", () => {
  const box = (kind, length) => {
    const data = concat([new Uint8Array(4), utf8(kind), new Uint8Array(length)]);
    new DataView(data.buffer).setUint32(0, data.length);
    return data;
  };
  const mpo = concat([JPEG, JPEG]);
  const motion = concat([JPEG, box("ftyp", 16), box("mdat", 4000)]);
  for (const whole of [mpo, motion, concat([JPEG, new Uint8Array(10)]), concat([JPEG, utf8("SEFHjunkSEFT")])]) {
    assert.equal(isComplete(whole, "image/jpeg"), true);
  }
  for (const piece of [mpo.subarray(0, JPEG.length + 2), mpo.subarray(0, mpo.length - 1), motion.subarray(0, JPEG.length + 100)]) {
    assert.equal(isComplete(piece, "image/jpeg"), false);
  }
});

test("an image carried anywhere in a body: raw, base64, URL-safe, percent-encoded or JSON-escaped", () => {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  const webp = utf8("RIFF\x10\0\0\0WEBPVP8 ");
  const images = [JPEG, png, utf8("GIF87a\x01\0"), utf8("GIF89a\x01\0"), webp, ftyp("heic"), ftyp("avif"), ftyp("miaf")];
  const within = (text) => utf8(`{"user": 1, "photo": "${text}", "done": true}`);
  for (const image of images) {
    const b64 = toBase64(image);
    const bodies = [
      image,
      concat([utf8("--b\r\n\r\n"), image]),
      within(b64),
      within(`data:image/png;base64,${b64}`),
      within(toBase64(image, true)),  // URL-safe
      utf8(`photo=${encodeURIComponent(b64)}`),
      utf8(`a=1&photo=${encodeURIComponent(toBase64(concat([new Uint8Array(3), image])))}`),
      utf8(`photo=${b64.replaceAll("/", "%2f").replaceAll("+", "%2b")}`),
      within(b64.replaceAll("/", "\\/")),  // JSON-escaped, as PHP writes it
    ];
    for (const body of bodies) {
      assert.equal(carriesImage(body), true, `${imageType(image)}: ${new TextDecoder("latin1").decode(body.subarray(0, 60))}`);
    }
  }
  // a JPEG's base64 cut short: its APP0 is too long to see the end of, but names itself
  assert.equal(carriesImage(utf8(toBase64(JPEG.subarray(0, 12)))), true);
  assert.equal(carriesImage(utf8("UklGRv%2F%2F%2F%2F9XRUJQ")), true);  // RIFF, a size of all ones, WEBP
  // a match across the 1 MiB windows the body is read in: a long one (114 characters), each
  // symbol of it percent-encoded where it can be, a percent-encoded CRLF between two
  const long = [..."UklGRv////9XRUJQ"].map((c) => (c === "/" ? "%2F" : c)).join("%0D%0A");
  for (const at of [(1 << 20) - 113, (1 << 20) - 20, (1 << 20) - 2, 1 << 20, 2 << 20]) {
    const body = new Uint8Array((2 << 20) + 200);
    body.set(utf8(long), at);
    assert.equal(carriesImage(body), true, String(at));
  }
  // a JPEG whose SOI ends a window: its header is read on from the body, raw and base64
  const jsonEscaped = utf8(toBase64(JPEG).replaceAll("/", "\\/"));
  for (const at of [(1 << 20) - 3, (1 << 20) - 1, (2 << 20) - 2]) {
    for (const image of [JPEG, jsonEscaped, utf8(toBase64(JPEG).replaceAll("/", "%2F"))]) {
      const body = new Uint8Array(at + image.length + 10);
      body.set(image, at);
      assert.equal(carriesImage(body), true, `${at} ${image[0]}`);
    }
  }
});

test("a JPEG with fill bytes after its SOI is found", () => {
  const filled = concat([JPEG.subarray(0, 2), Uint8Array.of(0xff), JPEG.subarray(2)]);
  assert.equal(carriesImage(concat([utf8("--x\r\n"), filled])), true);
  assert.equal(carriesImage(utf8(`{"photo": "${toBase64(filled)}"}`)), true);
});

/** `size` bytes of seeded noise (AES-CTR of zeros): the same bytes every run. */
function noise(size, seed = 0) {
  const cipher = createCipheriv("aes-128-ctr", new Uint8Array(16).fill(seed), new Uint8Array(16));
  return new Uint8Array(cipher.update(new Uint8Array(size)));
}

test("chance does not make an image", () => {
  // a video past max_bytes on a block site must not be refused for three lucky bytes
  const random = noise(8000000);
  const seeded = concat([random.subarray(0, 4000000), Uint8Array.of(0xff, 0xd8, 0xff, 0xe1), random.subarray(4000000)]);
  assert.equal(carriesImage(seeded), false);
  assert.equal(carriesImage(utf8(toBase64(seeded))), false);
  // where a real header follows the SOI, the same noise carries an image (raw, and base64
  // from a whole 3-byte group)
  const photo = concat([random.subarray(0, 3999999), JPEG.subarray(0, 30), random.subarray(3999999)]);
  assert.equal(carriesImage(photo), true);
  assert.equal(carriesImage(utf8(toBase64(photo))), true);
});

test("no image: plain text, a JPEG SOI with no header after it, pieces of magic", () => {
  const bodies = [
    new Uint8Array(0), utf8("hello"), utf8('{"text": "hi"}'), utf8("a=1&b=two%2Fthree"),
    new Uint8Array([0xff, 0xd8, 0xff]), new Uint8Array([0xff, 0xd8, 0xff, 0x00, 0x10]), new Uint8Array([0xff, 0xd8, 0xff, 0xd9]),
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a]), utf8("GIF88a"), utf8("RIFF\x10\0\0\0AVI LIST"), utf8("....ftypisommp42"), utf8("UklGRiQAAABXQVZF"),
    utf8("/9j"), utf8("%2F9j/"), utf8("r0lgodlh"), new Uint8Array(3 << 20),
    utf8('{"bio": "/9J/ is not it"}'), utf8("RIFF\0\0\0\0WAVE"),
    utf8('{"session": "kq3Zx/9j/abcdEFGH"}'),  // "/9j/" by chance: no JPEG header follows
    utf8("/9j/4AAQ"),  // an APP0 whose end and name are both out of sight
    concat([Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10), utf8("JFIF\0"), new Uint8Array(600)]),  // a length that ends on no marker
  ];
  for (const body of bodies) assert.equal(carriesImage(body), false, new TextDecoder("latin1").decode(body.subarray(0, 40)));
});

test("a body of countless JPEG starts is taken to carry one, as grasp_sdk does", () => {
  const text = (s) => new TextEncoder().encode(s);
  assert.equal(carriesImage(text("/9j/ ".repeat(4096))), false);
  assert.equal(carriesImage(text("/9j/ ".repeat(4097))), true);
  const raw = new Uint8Array(4 * 4097);
  for (let i = 0; i < raw.length; i += 4) raw.set([0xff, 0xd8, 0xff], i);
  assert.equal(carriesImage(raw), true);
});

/** `jpeg` without its APPn and COM segments before the first table: DQT comes first. */
function firstSegmentsDropped(jpeg) {
  let i = 2;
  while (jpeg[i + 1] === 0xfe || (jpeg[i + 1] >= 0xe0 && jpeg[i + 1] <= 0xef)) i += 2 + ((jpeg[i + 2] << 8) | jpeg[i + 3]);
  return concat([jpeg.subarray(0, 2), jpeg.subarray(i)]);
}

const segmentFirst = (jpeg, marker, payload) => concat([
  jpeg.subarray(0, 2), Uint8Array.of(0xff, marker, (payload.length + 2) >> 8, (payload.length + 2) & 0xff), payload, jpeg.subarray(2),
]);
const lines = (text, width, sep) => text.match(new RegExp(`.{1,${width}}`, "gs")).join(sep);
const mime = (data) => `${lines(toBase64(data), 76, "\n")}\n`;  // as Python's base64.encodebytes writes it
const latin = (body) => new TextDecoder("latin1").decode(body.subarray(0, 60));

test("base64 broken into lines is read across them, as grasp_sdk reads it", () => {
  // the header's end (DQT's 67 bytes, 90 characters) lies past the first line
  const dqtFirst = firstSegmentsDropped(JPEG);
  const b64 = toBase64(dqtFirst);
  const bodies = [
    utf8(mime(dqtFirst)),  // MIME: 76 characters a line, LF
    utf8(`--b\r\nContent-Transfer-Encoding: base64\r\n\r\n${lines(b64, 76, "\r\n")}`),
    utf8(`-----BEGIN IMAGE-----\n${lines(b64, 64, "\n")}\n-----END IMAGE-----`),  // PEM
    utf8(JSON.stringify({ img: lines(b64, 76, "\n") })),  // JSON: '\n' escaped
    utf8(JSON.stringify({ img: lines(b64, 76, "\r\n") })),  // '\r\n' escaped
    utf8(`photo=${encodeURIComponent(mime(dqtFirst))}`),  // '%0A'
  ];
  for (const body of bodies) assert.equal(carriesImage(body), true, latin(body));
  assert.equal(carriesImage(utf8(mime(noise(1000000, 1)))), false);
});

test("a JPEG whose first segment is long is found, as grasp_sdk finds it", () => {
  const dqt = firstSegmentsDropped(JPEG);
  const table = (n) => concat([Uint8Array.of(0x10 | n), Uint8Array.from({ length: 128 }, (_, i) => i)]);
  const tables = concat([dqt.subarray(0, 2), Uint8Array.of(0xff, 0xdb, (2 + 4 * 129) >> 8, (2 + 4 * 129) & 0xff),
    table(0), table(1), table(2), table(3), dqt.subarray(2)]);  // four 16-bit tables
  const comment = segmentFirst(JPEG, 0xfe, utf8("c".repeat(598)));  // a 600-byte COM
  const longComment = segmentFirst(JPEG, 0xfe, utf8("Made with a camera app. ".repeat(200)));  // past any window
  for (const found of [tables, comment, longComment]) {
    for (const body of [concat([utf8("--x\r\n\r\n"), found]), utf8(toBase64(found)), utf8(mime(found))]) {
      assert.equal(carriesImage(body), true, latin(body));
    }
  }
  const binary = segmentFirst(JPEG, 0xfe, new Uint8Array(4800));  // a COM too long to see the end of: not text
  assert.equal(carriesImage(concat([utf8("--x\r\n\r\n"), binary.subarray(0, 3000)])), false);
  assert.equal(carriesImage(utf8(toBase64(binary))), false);
  assert.equal(carriesImage(concat([utf8("--x\r\n\r\n"), binary])), true);  // raw, its end is seen past the window
  assert.equal(carriesImage(longComment.subarray(0, 18)), false);  // 12 bytes of it seen: too few to tell text
});

test("every JPEG start is looked at, even one overlapping another, as grasp_sdk does", () => {
  const b64 = toBase64(JPEG);
  const bodies = [
    concat([utf8("--x\r\n\r\n"), Uint8Array.of(0xff, 0xd8), JPEG]),  // a stray SOI's first bytes before the photo
    utf8(`{"photo": "/9j${b64}"}`),  // '/9j' just before '/9j/4AAQ'
    utf8(`{"photo": "\\/9j${b64.replaceAll("/", "\\/")}"}`),
    utf8(`photo=%2F9j${encodeURIComponent(b64)}`),
    utf8(`p=_9j${toBase64(JPEG, true)}`),
  ];
  for (const body of bodies) assert.equal(carriesImage(body), true, latin(body));
});

/** `image` as a bytes field of a protobuf message in a gRPC-web text frame, base64 as a whole. */
function grpcWebText(image, lead) {
  const size = image.length < 0x80 ? [image.length] : [(image.length & 0x7f) | 0x80, image.length >> 7];
  const message = concat([Uint8Array.of(0x12, lead), new Uint8Array(lead), Uint8Array.of(0x0a, ...size), image]);
  const header = new Uint8Array(5);
  new DataView(header.buffer).setUint32(1, message.length);
  return utf8(toBase64(concat([header, message])));
}

test("base64 of an image at any byte of a 3-byte group is found, as grasp_sdk finds it", () => {
  // a base64'd container (gRPC-web text, a msgpack or CBOR field) puts the image anywhere
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  const images = [JPEG, png, utf8("GIF89a\x01\0"), utf8("RIFF\x10\0\0\0WEBPVP8 "), ftyp("heic"), ftyp("mif1", ["avif"])];
  for (const image of images) {
    for (const offset of [1, 2]) {
      const data = concat([Uint8Array.of(1, 2).subarray(0, offset), image]);
      const b64 = toBase64(data);
      const bodies = [
        utf8(b64),
        utf8(toBase64(data, true)),
        utf8(`photo=${encodeURIComponent(b64)}`),
        utf8(`{"photo": "${b64.replaceAll("/", "\\/")}"}`),
        utf8(mime(concat([new Uint8Array(57), data]))),  // MIME, the image on the second line
        utf8(JSON.stringify({ img: lines(b64, 76, "\r\n") })),
      ];
      for (const body of bodies) assert.equal(carriesImage(body), true, `${imageType(image)} ${offset}: ${latin(body)}`);
    }
    for (const lead of [0, 1, 2]) assert.equal(carriesImage(grpcWebText(image, lead)), true, `${imageType(image)} gRPC-web ${lead}`);
  }
  // a JPEG start whose symbol before is in the window before the match's
  for (const offset of [1, 2]) {
    const b64 = utf8(toBase64(concat([new Uint8Array(offset), JPEG])));
    for (let at = (1 << 20) - 4; at <= 1 << 20; at++) {
      const body = new Uint8Array(at + b64.length + 10);
      body.set(b64, at);
      assert.equal(carriesImage(body), true, `${offset} ${at}`);
    }
  }
});

test("a base64 image start split by a line break is found, as grasp_sdk finds it", () => {
  // a line ends anywhere: in an SOI's or a signature's symbols too, at any offset
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  for (const newline of ["\n", "\r\n", "\\n", "\\r\\n", "%0A", "%0d%0a"]) {
    for (const image of [JPEG, png, utf8("GIF87a\x01\0")]) {
      for (const offset of [0, 1, 2]) {
        const b64 = toBase64(concat([new Uint8Array(offset), image]));
        for (let at = 1; at < 12; at++) {
          const body = utf8(b64.slice(0, at) + newline + b64.slice(at));
          assert.equal(carriesImage(body), true, `${offset} ${latin(body)}`);
        }
      }
    }
  }
});

test("JPEG starts at any offset count toward the doubt rule, as grasp_sdk counts them", () => {
  // "P/Y/8" and "D/2P/": the base64 of an SOI 1 and 2 bytes into a group (26 bits each)
  assert.equal(carriesImage(utf8("P/Y/8 ".repeat(4096))), false);
  assert.equal(carriesImage(utf8("P/Y/8 ".repeat(4097))), true);
  assert.equal(carriesImage(utf8("/9j/ ".repeat(2048) + "D/2P/ ".repeat(2048))), false);
  assert.equal(carriesImage(utf8("/9j/ ".repeat(2048) + "D/2P/ ".repeat(2049))), true);
  assert.equal(carriesImage(utf8("A/Y/8 ".repeat(4097))), false);  // the symbol before does not hold the SOI's bits
  // a real header after an SOI in noise, at each offset into a group; none without one
  const random = noise(3000000, 2);
  for (const offset of [0, 1, 2]) {
    const photo = concat([random.subarray(0, 1500000 + offset), JPEG.subarray(0, 30), random.subarray(1500000)]);
    assert.equal(carriesImage(utf8(toBase64(photo))), true, String(offset));
    assert.equal(carriesImage(utf8(toBase64(random.subarray(0, 2000000 + offset)))), false, String(offset));
  }
});

test("a long comment in UTF-8 is text, as grasp_sdk reads it", () => {
  for (const text of ["富士山の写真。撮影：山田太郎\n", "Ünïcödé çømmënt\t", "😀 emoji "]) {
    for (const lead of ["", "x", "xy"]) {  // the window ends within a character, or not
      const found = segmentFirst(JPEG, 0xfe, utf8(lead + text.repeat(400)));
      const offset = utf8(toBase64(concat([Uint8Array.of(1), found])));
      for (const body of [concat([utf8("--x\r\n\r\n"), found]), utf8(toBase64(found)), offset]) {
        assert.equal(carriesImage(body), true, `${lead} ${latin(body)}`);
      }
    }
    for (const bad of ["\x01", "\x7f", "\x85"]) {  // control characters: C0, DEL, C1
      const found = segmentFirst(JPEG, 0xfe, utf8(text.repeat(20) + bad + text.repeat(400)));
      assert.equal(carriesImage(concat([utf8("--x\r\n\r\n"), found.subarray(0, 3000)])), false, JSON.stringify(bad));
      assert.equal(carriesImage(utf8(toBase64(found))), false, JSON.stringify(bad));
    }
    const invalid = segmentFirst(JPEG, 0xfe, concat([utf8(text.repeat(20)), Uint8Array.of(0xff), utf8(text.repeat(400))]));
    assert.equal(carriesImage(concat([utf8("--x\r\n\r\n"), invalid.subarray(0, 3000)])), false);
  }
});

test("a JPEG whose first segment is a long binary-named APPn is found, as grasp_sdk finds it", () => {
  // C2PA's JUMBF (APP11) or an MPF (APP2) first, longer than any window
  for (const [marker, name] of [[0xeb, [0x4a, 0x50, 0, 1, 0, 0, 0, 1]], [0xe2, [0x4d, 0x50, 0x46, 0]]]) {
    const payload = concat([Uint8Array.from(name), ...Array.from({ length: 40 }, () => Uint8Array.from({ length: 256 }, (_, i) => i))]);
    const found = segmentFirst(JPEG, marker, payload);
    for (const body of [concat([utf8("--x\r\n\r\n"), found]), concat([found, utf8("\r\n--x--")]), utf8(toBase64(found))]) {
      assert.equal(carriesImage(body), true, latin(body));
    }
    assert.equal(carriesImage(found.subarray(0, 3000)), true);  // cut before the segment's end: its name says JPEG
    assert.equal(carriesImage(segmentFirst(JPEG, marker, new Uint8Array(12000)).subarray(0, 3000)), false);
  }
});

test("a photo as JSON byte values is found, as grasp_sdk finds it", () => {
  const png = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 8);
  for (const photo of [JPEG, png]) {
    for (const text of [JSON.stringify({ photo: Array.from(photo) }),
      JSON.stringify({ photo: Array.from(photo, (b) => (b > 127 ? b - 256 : b)) }),  // Gson's signed byte[]
      JSON.stringify({ photo: Array.from(photo) }, null, 8)]) {
      assert.equal(carriesImage(utf8(text)), true, text.slice(0, 40));
    }
  }
  assert.equal(carriesImage(utf8(JSON.stringify({ scores: Array.from({ length: 300 }, (_, i) => i) }))), false);
  assert.equal(carriesImage(utf8(JSON.stringify({ big: [255, 216, 255, ...Array(20).fill(999)] }))), false);
  // in a form, percent-encoded, as URLSearchParams writes it
  const form = new URLSearchParams({ photo: JSON.stringify(Array.from(JPEG)) }).toString();
  assert.ok(form.includes("%5B255%2C"));
  assert.equal(carriesImage(utf8(form)), true);
  assert.equal(carriesImage(utf8(new URLSearchParams({ n: JSON.stringify(Array.from({ length: 300 }, (_, i) => i)) }).toString())), false);
});

// 8 x 8 photos of one colour, as PIL writes them (tests/sdk/test_sniff.py's _photo)
const PHOTOS = {
  JPEG,
  PNG: fromBase64("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFElEQVR4nGOM0uBiwAaYsIoOWgkAc6AAnMiFg8YAAAAASUVORK5CYII="),
  GIF: fromBase64("R0lGODdhCAAIAIEAAFooCgAAAAAAAAAAACwAAAAACAAIAAAIDwABCBxIsKDBgwgTKkwYEAA7"),
  WEBP: fromBase64("UklGRjQAAABXRUJQVlA4ICgAAACQAQCdASoIAAgAAUAmJZACdLoAA5gA/vjqf/c2OcWzu/1XiDM9ZAAA"),
};
const binaryString = latin1;  // FileReader.readAsBinaryString: a byte a character
const hexOf = (data) => Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
const utf16le = (text) => new Uint8Array(Buffer.from(text, "utf16le"));
const utf32be = (text) => {
  const out = new DataView(new ArrayBuffer(text.length * 4));
  [...text].forEach((c, i) => out.setUint32(4 * i, c.codePointAt(0)));
  return new Uint8Array(out.buffer);
};
const base64Json = (data) => JSON.stringify({ photo: toBase64(data) });

const writtenAsText = {
  "percent-bytes": (b) => utf8(`caption=me&photo=${quoteBytes(b)}`),  // requests
  "binary-string": (b) => utf8(JSON.stringify({ photo: binaryString(b) })),
  "binary-string-escaped": (b) => utf8(asciiJson({ photo: binaryString(b) })),  // \u00ff escapes
  "binary-string-percent": (b) => utf8(`photo=${encodeURIComponent(binaryString(b))}`),
  "utf-16": (b) => utf16le(`\ufeff${base64Json(b)}`),
  "utf-16-le": (b) => utf16le(base64Json(b)),
  "utf-32-be": (b) => utf32be(base64Json(b)),
  "bytea-hex": (b) => utf8(JSON.stringify({ avatar: `\\x${hexOf(b)}` })),  // Postgres bytea
  "hex-upper": (b) => utf8(JSON.stringify({ photo: hexOf(b).toUpperCase() })),
  "typed-array-object": (b) => utf8(JSON.stringify({ photo: b })),  // a Uint8Array
  "typed-array-object-indented": (b) => utf8(JSON.stringify({ photo: b }, null, 2)),
  "json-in-json": (b) => utf8(JSON.stringify({ payload: base64Json(b).replaceAll("/", "\\/") })),  // PHP
  "json-in-json-in-json": (b) => utf8(JSON.stringify({
    payload: JSON.stringify({ inner: base64Json(b).replaceAll("/", "\\/") }) })),
  "json-in-json-php": (b) => utf8(JSON.stringify({ payload: base64Json(b).replaceAll("/", "\\/") })
    .replaceAll("/", "\\/")),  // PHP throughout: \\\/
};

for (const [name, wrap] of Object.entries(writtenAsText)) {
  test(`an image is found as bytes written as text (${name}), as grasp_sdk finds it`, () => {
    for (const [format, photo] of Object.entries(PHOTOS)) {
      const body = wrap(photo);
      assert.equal(carriesImage(body), true, `${format}: ${latin(body)}`);
    }
  });
}

test("a design file's colour is no hex image however often it is written, as grasp_sdk reads it", () => {
  // each start counted toward the doubt limit refused one of 4097 of them
  assert.equal(carriesImage(utf8(JSON.stringify({ fills: Array(5000).fill("#ffd8ff") }))), false);
});

test("text that only looks like written bytes is none, as grasp_sdk reads it", () => {
  const bodies = [
    utf8(JSON.stringify({ colour: "#ffd8ff", name: "Zoë" })),
    utf16le(`\ufeff${asciiJson({ bio: "Chloé à Orléans" })}`),
    utf8("q=%C3%A9t%C3%A9&hash=ffd8ff00aa"),
    utf8(JSON.stringify({ ids: { 0: 1, 1: 2 } })),
    utf8("ÿØÿ is three letters"),
  ];
  for (const body of bodies) assert.equal(carriesImage(body), false, latin(body));
});
