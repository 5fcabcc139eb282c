// The choices held until protected, on a stand-in window (node has no DOM): the user's
// (trusted) events are handed to the listeners the way the browser would.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  choiceHolder, holdClipboardImages, holdPickedFiles, holdUnreachableInputs, interceptChoices, watchDocumentOpen,
} from "../lib/intercept.js";

/** What the listeners use of a DataTransfer: files, string types, setData/getData. */
class FakeTransfer {
  constructor() {
    this.files = [];
    this.strings = new Map();
    this.items = { add: (file) => this.files.push(file) };
  }
  get types() { return [...(this.files.length ? ["Files"] : []), ...this.strings.keys()]; }
  setData(type, value) { this.strings.set(type, value); }
  getData(type) { return this.strings.get(type) ?? ""; }
}

class FakeClipboardEvent extends Event {
  constructor(type, init) {
    super(type, init);
    this.clipboardData = init.clipboardData;
  }
}

function stage() {
  globalThis.DataTransfer = FakeTransfer;
  globalThis.ClipboardEvent = FakeClipboardEvent;
  const listeners = {};
  const target = new EventTarget();
  target.isConnected = true;
  const win = { addEventListener: (type, listener) => { listeners[type] = listener; }, document: new EventTarget() };
  return { listeners, target, win };
}

function userPaste(target, files, strings = {}) {
  const clipboardData = new FakeTransfer();
  files.forEach((file) => clipboardData.items.add(file));
  for (const [type, value] of Object.entries(strings)) clipboardData.setData(type, value);
  const held = { prevented: false, stopped: false };
  return {
    held,
    event: {
      isTrusted: true, clipboardData, composedPath: () => [target],
      preventDefault: () => { held.prevented = true; }, stopImmediatePropagation: () => { held.stopped = true; },
    },
  };
}

test("a pasted photo reaches the page protected, with what came with it; the original never", async () => {
  const { listeners, target, win } = stage();
  const original = new File([new Uint8Array([0xff, 0xd8, 0xff])], "me.jpg", { type: "image/jpeg" });
  const protectedCopy = new File([new Uint8Array([1])], "me.jpg", { type: "image/jpeg" });
  interceptChoices(win, async (files) => files.map((f) => (f === original ? protectedCopy : f)));
  const seen = new Promise((resolve) => target.addEventListener("paste", resolve));
  const { held, event } = userPaste(target, [original], { "text/html": "<img>" });
  listeners.paste(event);
  assert.deepEqual(held, { prevented: true, stopped: true });
  const again = await seen;
  assert.deepEqual(again.clipboardData.files, [protectedCopy]);
  assert.equal(again.clipboardData.getData("text/html"), "<img>");
});

test("a dropped folder goes as it is, or is refused where the site says so; a drop of files is held", async () => {
  for (const refuses of [false, true]) {
    const { listeners, target, win } = stage();
    let protectAsked = 0;
    let folderAsked = 0;
    interceptChoices(win, async (files) => { protectAsked += 1; return files; }, () => { folderAsked += 1; return refuses; });
    // Chromium lists a dropped folder among the files: a File of its name, no type
    const folder = new File([], "Holiday");
    const transfer = new FakeTransfer();
    transfer.items = [{ webkitGetAsEntry: () => ({ isDirectory: true }) }, { webkitGetAsEntry: () => ({ isDirectory: false }) }];
    transfer.files = [folder, photo()];
    const held = { prevented: false, stopped: false };
    listeners.drop({
      isTrusted: true, dataTransfer: transfer, composedPath: () => [target],
      preventDefault: () => { held.prevented = true; }, stopImmediatePropagation: () => { held.stopped = true; },
    });
    assert.deepEqual(held, { prevented: refuses, stopped: refuses });
    assert.deepEqual([folderAsked, protectAsked], [1, 0]);
  }
});

test("a photo dropped on a file input arrives in the input, protected, as the browser's own drop would put it", async () => {
  for (const multiple of [false, true]) {
    const { listeners, win } = stage();
    win.HTMLInputElement = FakeInput;
    const original = photo();
    const protectedCopy = photo();
    interceptChoices(win, async (files) => files.map((f) => (f === original ? protectedCopy : f)));
    const input = Object.assign(new FakeInput(), { multiple });
    const changed = new Promise((resolve) => input.addEventListener("change", () => resolve([...input.files])));
    const second = photo();
    const transfer = new FakeTransfer();
    transfer.files = [original, second];
    const held = { prevented: false };
    listeners.drop({
      type: "drop", isTrusted: true, dataTransfer: transfer, composedPath: () => [input],
      preventDefault: () => { held.prevented = true; }, stopImmediatePropagation() {},
    });
    assert.ok(held.prevented);
    assert.deepEqual(await changed, multiple ? [protectedCopy, second] : [protectedCopy]);
  }
});

test("with every site of the page switched off, a drop, a paste and a choice are the browser's alone", () => {
  const { listeners, target, win } = stage();
  win.HTMLInputElement = FakeInput;
  let asked = 0;
  interceptChoices(win, async (files) => { asked += 1; return files; }, () => false, () => false);
  const transfer = new FakeTransfer();
  transfer.files = [photo()];
  const held = { prevented: false, stopped: false };
  const hold = { preventDefault: () => { held.prevented = true; }, stopImmediatePropagation: () => { held.stopped = true; } };
  listeners.drop({ type: "drop", isTrusted: true, dataTransfer: transfer, composedPath: () => [target], ...hold });
  const pasted = userPaste(target, [photo()]);
  listeners.paste(pasted.event);
  const input = Object.assign(new FakeInput(), { files: [photo()] });
  listeners.change({ isTrusted: true, composedPath: () => [input], ...hold });
  assert.deepEqual([held, pasted.held, asked, input.files.length], [{ prevented: false, stopped: false },
    { prevented: false, stopped: false }, 0, 1]);
});

test("a photo file copied in a file manager (its name as the text) is held as a photo, unlike text with its picture", () => {
  const { listeners, target, win } = stage();
  let asked = 0;
  interceptChoices(win, async (files) => { asked += 1; return files; });
  const file = new File([new Uint8Array([0xff, 0xd8, 0xff])], "IMG_0042.jpg", { type: "image/jpeg" });
  const copied = userPaste(target, [file], { "text/plain": "IMG_0042.jpg" });
  listeners.paste(copied.event);
  const renamed = new File([new Uint8Array([0x89])], "image.png", { type: "image/png" });
  const finder = userPaste(target, [renamed], { "text/plain": "IMG_0043.HEIC" });  // Chrome on macOS
  listeners.paste(finder.event);
  const table = userPaste(target, [file], { "text/plain": "a\tb\n1\t2" });
  listeners.paste(table.event);
  assert.deepEqual([copied.held, finder.held, table.held, asked], [{ prevented: true, stopped: true },
    { prevented: true, stopped: true }, { prevented: false, stopped: false }, 2]);
});

test("a paste without a photo, or of text with its picture, is the page's own; a refused photo is never pasted", async () => {
  const { listeners, target, win } = stage();
  interceptChoices(win, async () => null);
  const picture = new File([new Uint8Array([0x89])], "image.png", { type: "image/png" });
  for (const [files, strings] of [[[], { "text/plain": "just text" }], [[picture], { "text/plain": "a table" }]]) {
    const text = userPaste(target, files, strings);
    listeners.paste(text.event);
    assert.deepEqual(text.held, { prevented: false, stopped: false });
  }
  let pasted = 0;
  target.addEventListener("paste", () => { pasted += 1; });
  const photo = userPaste(target, [new File([new Uint8Array([0xff])], "a.png", { type: "image/png" })]);
  listeners.paste(photo.event);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual([photo.held.prevented, pasted], [true, 0]);
});

class FakeInput extends EventTarget {
  type = "file";
  files = [];
}

class FakeButton {
  type = "submit";
  constructor(form) { this.form = form; }
}

class FakeForm {
  isConnected = true;
  submitted = [];
  constructor(elements) { this.elements = elements; }
  requestSubmit(submitter = null) { this.submitted.push(submitter); }
}

function formStage(protectFiles) {
  const { listeners, win } = stage();
  Object.assign(win, { HTMLInputElement: FakeInput, HTMLFormElement: FakeForm, HTMLElement: FakeButton });
  interceptChoices(win, protectFiles);
  const input = new FakeInput();
  const form = new FakeForm([input]);
  input.form = form;
  const choose = (file) => {
    input.files = [file];
    listeners.change({ isTrusted: true, composedPath: () => [input], stopImmediatePropagation() {} });
  };
  const submit = (submitter) => {
    const held = { prevented: false, stopped: false };
    listeners.submit({
      isTrusted: true, target: form, submitter,
      preventDefault: () => { held.prevented = true; }, stopImmediatePropagation: () => { held.stopped = true; },
    });
    return held;
  };
  const drop = (file) => {
    const dataTransfer = new FakeTransfer();
    dataTransfer.items.add(file);
    listeners.drop({ type: "drop", isTrusted: true, dataTransfer, composedPath: () => [input],
      preventDefault() {}, stopImmediatePropagation() {} });
  };
  /**
   * The user's click on a submit button (on `hit`, in it), then the browser's validation of
   * the emptied input: once the click went through the page's listeners (its phase NONE),
   * or from one of them (a page's reportValidity()).
   */
  const clickSubmitOfRequired = (button, { isTrusted = true, hit = button, eventPhase = 0 } = {}) => {
    const click = { type: "click", isTrusted: true, eventPhase: 1, defaultPrevented: false, composedPath: () => [hit, button, form] };
    if (isTrusted) listeners.click(click);
    click.eventPhase = eventPhase;
    const held = { prevented: false };
    listeners.invalid({ type: "invalid", isTrusted: true, target: input, preventDefault: () => { held.prevented = true; } });
    return held;
  };
  return { input, form, choose, submit, drop, clickSubmitOfRequired };
}

const photo = () => new File([new Uint8Array([0xff, 0xd8, 0xff])], "me.jpg", { type: "image/jpeg" });
const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

test("a form submitted while its photo is protected waits, then goes with the protected photo and its submitter", async () => {
  let answer;
  const protectedCopy = new File([new Uint8Array([1])], "me.jpg", { type: "image/jpeg" });
  const { input, form, choose, submit } = formStage(() => new Promise((resolve) => { answer = resolve; }));
  choose(photo());
  assert.deepEqual(input.files, []);  // nothing of the original while it is protected
  const button = { name: "send" };
  assert.deepEqual(submit(button), { prevented: true, stopped: true });
  await settle();
  assert.deepEqual(form.submitted, []);  // not before the photo is in
  answer([protectedCopy]);
  await settle();
  assert.deepEqual(input.files, [protectedCopy]);
  assert.deepEqual(form.submitted, [button]);
  assert.deepEqual(submit(button), { prevented: false, stopped: false });  // nothing pending now
});

test("a later choice without a photo in the same input stands: the earlier photo's protection never replaces it", async () => {
  let answer;
  const { input, form, choose, submit } = formStage(() => new Promise((resolve) => { answer = resolve; }));
  let changes = 0;
  input.addEventListener("change", () => { changes += 1; });
  choose(photo());
  const cv = new File(["%PDF"], "cv.pdf", { type: "application/pdf" });
  choose(cv);  // the user changed their mind while the photo was protected
  assert.deepEqual(submit(null), { prevented: false, stopped: false });  // nothing pending now
  answer([new File([new Uint8Array([1])], "me.jpg", { type: "image/jpeg" })]);
  await settle();
  assert.deepEqual([input.files, changes, form.submitted], [[cv], 0, []]);
});

test("a held form is not submitted again when its photo is refused; a form with nothing pending is the page's", async () => {
  const refused = formStage(async () => null);
  refused.choose(photo());
  assert.deepEqual(refused.submit(null), { prevented: true, stopped: true });
  await settle();
  assert.deepEqual(refused.form.submitted, []);
  const idle = formStage(async (files) => files);
  assert.deepEqual(idle.submit(null), { prevented: false, stopped: false });
});

test("a second submit while the first is held is not made again: the form goes once", async () => {
  let answer;
  const { form, choose, submit } = formStage(() => new Promise((resolve) => { answer = resolve; }));
  choose(photo());
  const first = { name: "post" };
  const again = { name: "post again" };
  submit(first);
  assert.deepEqual(submit(again), { prevented: true, stopped: true });  // the page never sees it
  answer([new File([new Uint8Array([1])], "me.jpg", { type: "image/jpeg" })]);
  await settle();
  assert.deepEqual(form.submitted, [again]);
});

test("a required input held empty fails the browser's validation: the user's submit is held, then made with the photo", async () => {
  let answer;
  const { form, choose, clickSubmitOfRequired } = formStage(() => new Promise((resolve) => { answer = resolve; }));
  choose(photo());
  const button = new FakeButton(form);
  assert.deepEqual(clickSubmitOfRequired(button, { eventPhase: 2 }), { prevented: false });  // the page's reportValidity()
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(clickSubmitOfRequired(button, { hit: { name: "the button's icon" } }), { prevented: true });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(clickSubmitOfRequired(button, { isTrusted: false }), { prevented: false });  // a script's checkValidity() later
  answer([new File([new Uint8Array([1])], "me.jpg", { type: "image/jpeg" })]);
  await settle();
  assert.deepEqual(form.submitted, [button]);
});

test("a photo dropped on an input while an earlier choice is protected stands: the earlier result never replaces it", async () => {
  const answers = [];
  const { input, choose, drop } = formStage(() => new Promise((resolve) => { answers.push(resolve); }));
  const changes = [];
  input.addEventListener("change", () => changes.push(input.files[0].name));
  choose(photo());
  drop(new File([new Uint8Array([0xff, 0xd8, 0xff])], "second.jpg", { type: "image/jpeg" }));
  answers[1]([new File([new Uint8Array([2])], "second.jpg", { type: "image/jpeg" })]);
  await settle();
  answers[0]([new File([new Uint8Array([1])], "me.jpg", { type: "image/jpeg" })]);
  await settle();
  assert.deepEqual(changes, ["second.jpg"]);
});

test("document.open(), which removes every listener, is told each time; a write while the page is parsed is not", () => {
  class FakeDocument {
    root = {};
    get documentElement() { return this.root; }
    open() { this.root = null; return this; }
    write(html) {
      if (html === "bad") throw new Error("no");
      if (this.root === null) this.root = {};  // the parser made a new one
    }
  }
  let told = 0;
  const document = new FakeDocument();
  watchDocumentOpen({ Document: FakeDocument, document }, () => { told += 1; });
  document.write("<p>ad</p>");  // while the page is parsed: nothing removed
  assert.equal(told, 0);
  assert.equal(document.open(), document);
  assert.equal(told, 1);
  document.write("<p>");  // on the emptied document: the parser's new root
  assert.equal(told, 2);
  assert.throws(() => document.write("bad"), /no/);  // thrown, and nothing opened
  new FakeDocument().open();  // another frame's document: its own script is told
  assert.equal(told, 2);
});

/** A page's world with file inputs made by its scripts (never put in the document). */
function pageWorld() {
  globalThis.DataTransfer = FakeTransfer;
  // the page's EventTarget.prototype, as the extension patches it; brands are read through
  // prototype getters, as the browser's
  class FakeNode extends EventTarget {
    get nodeType() { return 1; }
    getRootNode() { return this.root ?? this; }
  }
  const document = new FakeNode();
  class FakeElement extends FakeNode {
    click() {}
  }
  class FakeInput extends FakeElement {
    #files = [];
    constructor() {
      super();
      this.root = {};  // not in the document
    }
    get type() { return "file"; }
    get files() { return this.#files; }
    set files(list) { this.#files = list; }
  }
  const win = Object.assign(new EventTarget(), { EventTarget: FakeNode, Node: FakeNode, HTMLElement: FakeElement,
    HTMLInputElement: FakeInput, document });
  return { win, FakeInput };
}

/** The user's choice of `files` in `input`: a trusted `change`. */
function userChoice(input, files) {
  input.files = files;
  const event = new Event("change");
  Object.defineProperty(event, "isTrusted", { value: true });
  input.dispatchEvent(event);
}

test("a script-made input: a page listening before it opens the picker never sees the original", async () => {
  const { win, FakeInput } = pageWorld();
  const original = new File([new Uint8Array([0xff, 0xd8, 0xff])], "me.jpg", { type: "image/jpeg" });
  const protectedCopy = new File([new Uint8Array([1])], "me.jpg", { type: "image/jpeg" });
  holdUnreachableInputs(win, choiceHolder(async (files) => files.map((f) => (f === original ? protectedCopy : f))));
  for (const capture of [true, false]) {
    const input = new FakeInput();
    const seen = [];
    input.addEventListener("change", () => seen.push([...input.files]), capture);
    input.click();
    const done = new Promise((resolve) => input.addEventListener("change", resolve));
    userChoice(input, [original]);
    await done;
    assert.deepEqual(seen, [[protectedCopy]], `capture ${capture}`);
  }
});

test("a script-made input the page listens to only after the picker opens is held too; one in the document is the window's", async () => {
  const { win, FakeInput } = pageWorld();
  const original = new File([new Uint8Array([0xff, 0xd8, 0xff])], "me.jpg", { type: "image/jpeg" });
  const asked = [];
  holdUnreachableInputs(win, choiceHolder(async (files) => { asked.push(files); return null; }));
  const input = new FakeInput();
  input.click();
  const seen = [];
  input.addEventListener("change", () => seen.push([...input.files]), true);
  userChoice(input, [original]);
  assert.deepEqual(seen, []);  // held, then refused: the page never gets it
  const inDocument = new FakeInput();
  inDocument.root = win.document;
  inDocument.addEventListener("change", () => seen.push([...inDocument.files]), true);
  userChoice(inDocument, [original]);
  assert.deepEqual([seen, asked.length], [[[original]], 1]);
});

test("a script-made input whose picker opens another way is held too: a dispatched click, HTMLElement's click", async () => {
  const { win, FakeInput } = pageWorld();
  const original = new File([new Uint8Array([0xff, 0xd8, 0xff])], "me.jpg", { type: "image/jpeg" });
  const protectedCopy = new File([new Uint8Array([1])], "me.jpg", { type: "image/jpeg" });
  holdUnreachableInputs(win, choiceHolder(async (files) => files.map((f) => (f === original ? protectedCopy : f))));
  for (const open of [(input) => input.dispatchEvent(new Event("click")), (input) => win.HTMLElement.prototype.click.call(input)]) {
    const input = new FakeInput();
    const seen = [];
    open(input);
    // a handler the extension's addEventListener never sees (an onchange property)
    EventTarget.prototype.addEventListener.call(input, "change", () => seen.push([...input.files]));
    const done = new Promise((resolve) => setTimeout(resolve, 10));
    userChoice(input, [original]);
    await done;
    assert.deepEqual(seen, [[protectedCopy]]);
  }
});

test("a library that wraps addEventListener after the extension still sees every input's listeners", async () => {
  const { win, FakeInput } = pageWorld();
  const original = new File([new Uint8Array([0xff, 0xd8, 0xff])], "me.jpg", { type: "image/jpeg" });
  const protectedCopy = new File([new Uint8Array([1])], "me.jpg", { type: "image/jpeg" });
  holdUnreachableInputs(win, choiceHolder(async () => [protectedCopy]));
  const wrapped = [];
  const patched = win.EventTarget.prototype.addEventListener;
  win.EventTarget.prototype.addEventListener = function zoneLike(type, ...rest) {  // zone.js, Sentry
    wrapped.push(type);
    return patched.call(this, type, ...rest);
  };
  const input = new FakeInput();
  const seen = [];
  input.addEventListener("change", () => seen.push([...input.files]), true);
  const done = new Promise((resolve) => input.addEventListener("change", resolve));
  userChoice(input, [original]);
  await done;
  assert.deepEqual([wrapped, seen], [["change", "change"], [[protectedCopy]]]);
});

test("a script-made input in a detached container the page listens to first: the page never sees the original", async () => {
  const { win, FakeInput } = pageWorld();
  const original = new File([new Uint8Array([0xff, 0xd8, 0xff])], "me.jpg", { type: "image/jpeg" });
  const asked = [];
  holdUnreachableInputs(win, choiceHolder(async (files) => { asked.push(files); return files; }));
  const container = new win.EventTarget();
  const input = new FakeInput();
  const seen = [];
  container.addEventListener("change", () => seen.push([...input.files]), true);  // before the picker opens
  input.click();
  // the user's choice, on its way down: the container's capture listeners first
  input.files = [original];
  const event = new Event("change");
  Object.defineProperties(event, { isTrusted: { value: true }, composedPath: { value: () => [input, container] } });
  container.dispatchEvent(event);
  assert.deepEqual([seen, asked], [[], [[original]]]);
});

/** A stand-in for the File System Access API: a handle reads the file on disk now; the
 * origin's private file system holds the handles in `own`. */
function pickerStage(protectFiles) {
  class FakeHandle {
    constructor(file) { this.file = file; }
    async getFile() { return this.file; }
  }
  const own = new Set();
  class FakeDirectory {
    async resolve(handle) { return own.has(handle) ? ["own.jpg"] : null; }
  }
  class FakeStorage {
    async getDirectory() { return new FakeDirectory(); }
  }
  const onDisk = new FakeHandle(photo());
  const win = {
    FileSystemFileHandle: FakeHandle, FileSystemDirectoryHandle: FakeDirectory, StorageManager: FakeStorage,
    navigator: { storage: new FakeStorage() }, Blob, File, DOMException, showOpenFilePicker: async () => [onDisk],
  };
  holdPickedFiles(win, protectFiles);
  return { win, onDisk, own, FakeHandle };
}

test("a photo a page reads through the File System Access API is its protected copy, protected once", async () => {
  const copies = [];
  const { win, onDisk, own, FakeHandle } = pickerStage(async (files) => {
    const copy = new File([new Uint8Array([copies.length])], files[0].name, { type: "image/jpeg" });
    copies.push(copy);
    return [copy];
  });
  const [handle] = await win.showOpenFilePicker({ types: [] });
  assert.equal(await handle.getFile(), copies[0]);
  assert.equal(await handle.getFile(), copies[0]);  // not protected again
  assert.equal(copies.length, 1);
  onDisk.file = new File([new Uint8Array([0xff, 0xd8, 0xff, 0])], "me.jpg", { type: "image/jpeg", lastModified: 7 });
  assert.equal(await handle.getFile(), copies[1]);  // changed on disk: protected again
  // any handle: a clone, one from a folder, a drop or IndexedDB (another object, the same file)
  assert.equal(await new FakeHandle(onDisk.file).getFile(), copies[2]);
  // a file in the origin's private file system (the page's own), and a file not a photo: as they are
  const mine = new FakeHandle(photo());
  own.add(mine);
  assert.equal(await mine.getFile(), mine.file);
  onDisk.file = new File(["text"], "notes.txt", { type: "text/plain" });
  assert.equal(await handle.getFile(), onDisk.file);
});

test("a photo a handle reads that was refused never reads; a failed protection is tried again", async () => {
  let answer = null;
  const { win } = pickerStage(async () => {
    if (answer === "throw") throw new Error("the port is gone");
    return answer;
  });
  const [handle] = await win.showOpenFilePicker();
  await assert.rejects(handle.getFile(), (e) => e.name === "NotAllowedError" && /refused/.test(e.message));
  answer = "throw";
  await assert.rejects(handle.getFile(), /the port is gone/);
  answer = [photo()];
  assert.equal(await handle.getFile(), answer[0]);
});

test("a page script's replacement of a built-in never sees the original a handle reads", async () => {
  const { win, onDisk } = pickerStage(async () => [photo()]);
  const seen = [];
  const saved = { has: WeakMap.prototype.has, get: WeakMap.prototype.get, startsWith: String.prototype.startsWith };
  const typeGetter = Object.getOwnPropertyDescriptor(Blob.prototype, "type");
  try {
    WeakMap.prototype.get = function get(key) { seen.push(key); return saved.get.call(this, key); };
    String.prototype.startsWith = function startsWith(...args) { seen.push(this); return saved.startsWith.apply(this, args); };
    Object.defineProperty(Blob.prototype, "type", { configurable: true, get() { seen.push(this); return typeGetter.get.call(this); } });
    const [handle] = await win.showOpenFilePicker();
    await handle.getFile();
  } finally {
    Object.assign(WeakMap.prototype, { get: saved.get });
    String.prototype.startsWith = saved.startsWith;
    Object.defineProperty(Blob.prototype, "type", typeGetter);
  }
  assert.ok(!seen.includes(onDisk.file), "a replaced built-in was handed the original");
});

test("a then a page script defines on Blob.prototype is never handed the original a handle or the clipboard reads", async () => {
  const original = new File([new Uint8Array([0xff, 0xd8, 0xff])], "me.jpg", { type: "image/jpeg" });
  const copy = photo();
  // The browser's promises, settled before the page script below defines its `then`.
  const settled = Promise.resolve(original);
  class FakeHandle { getFile() { return settled; } }
  class FakeItem {
    get types() { return ["image/jpeg"]; }
    getType() { return settled; }
  }
  const win = { FileSystemFileHandle: FakeHandle, ClipboardItem: FakeItem, Blob, File, DOMException, navigator: {} };
  holdPickedFiles(win, async () => [copy]);
  holdClipboardImages(win, async () => [copy]);
  await settled;
  const seen = [];
  try {
    Object.defineProperty(Blob.prototype, "then", { configurable: true, get() { seen.push(this); return undefined; } });
    assert.equal(await new FakeHandle().getFile(), copy);
    assert.equal(await new FakeItem().getType("image/jpeg"), copy);
  } finally {
    delete Blob.prototype.then;
  }
  assert.ok(!seen.includes(original), "the page's then was handed the original");
});

test("a browser without the File System Access API is left as it is", () => {
  const win = { FileSystemFileHandle: undefined };
  holdPickedFiles(win, async () => null);
  assert.deepEqual(win, { FileSystemFileHandle: undefined });
});

/** A stand-in for the async clipboard: `read` gives items of the blobs copied now. */
function clipboardStage(protectFiles, copied) {
  class FakeItem {
    constructor(blobs) { this.blobs = blobs; }
    get types() { return Object.keys(this.blobs); }
    async getType(type) { return this.blobs[type]; }
  }
  const win = { ClipboardItem: FakeItem, DOMException, Blob };
  holdClipboardImages(win, protectFiles);
  return { read: async () => copied.map((blobs) => new FakeItem(blobs)), FakeItem };
}

test("an image a script reads from the clipboard is its protected copy, protected once, when asked", async () => {
  const asked = [];
  const copy = new File([new Uint8Array([1])], "pasted", { type: "image/png" });
  const png = new Blob([new Uint8Array([0x89, 0x50])], { type: "image/png" });
  const { read, FakeItem } = clipboardStage(async (blobs) => {
    asked.push(blobs);
    return [copy];
  }, [{ "image/png": png, "text/html": "<img>" }, { "image/png": png, "text/plain": new Blob(["a table"]) },
    { "image/png": png, "text/plain": new Blob(["IMG_0042.JPG"]) }]);
  const [photoItem, textItem, fileItem] = await read();
  assert.equal(asked.length, 0);  // nothing protected until the page asks for the image
  assert.equal(await photoItem.getType("text/html"), "<img>");
  assert.equal(await photoItem.getType("image/png"), copy);
  assert.equal(await photoItem.getType("image/png"), copy);
  assert.deepEqual(asked, [[png]]);
  // an item of any realm or source, asked through this one's getType: protected too
  assert.equal(await FakeItem.prototype.getType.call(new FakeItem({ "image/png": png }), "image/png"), copy);
  // copied text with a picture of itself, and a type the item does not hold: as they are
  assert.equal(await textItem.getType("image/png"), png);
  assert.equal(await photoItem.getType("image/gif"), undefined);
  // a copied file, whose text is only its name: a photo, as when pasted
  assert.equal(await fileItem.getType("image/png"), copy);
});

test("a clipboard image that was refused never reads; a failed protection is tried again", async () => {
  let answer = null;
  const { read } = clipboardStage(async () => {
    if (answer === "throw") throw new Error("the port is gone");
    return answer;
  }, [{ "image/png": new Blob([new Uint8Array([0x89])], { type: "image/png" }) }]);
  const [item] = await read();
  await assert.rejects(item.getType("image/png"), (e) => e.name === "NotAllowedError");
  answer = "throw";
  await assert.rejects(item.getType("image/png"), /the port is gone/);
  answer = [photo()];
  assert.equal(await item.getType("image/png"), answer[0]);
});
