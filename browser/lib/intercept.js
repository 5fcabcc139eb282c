/**
 * Photos the user chooses in a file input, drops or pastes on the page, held back from the
 * page's scripts until they are protected.
 *
 * The listeners are the content script's, added to the window in the capture phase at
 * document_start: before any page script runs, so they are the first of the window's and
 * the window is the first stop of every event's path. Only trusted events count (the
 * user's own choice; a page cannot make one). A held `input`/`change` or `drop` is stopped
 * there; the input is emptied meanwhile, so nothing reads the original; once protected,
 * the input gets the protected files and `input` and `change` are fired again (a drop or a
 * paste: a new `drop` or `paste` carrying them, which page scripts read; a browser's own
 * default, pasting an image into an editable field, does not follow an event a script
 * fires). Refused photos (on_failure: block) never reach the page. A form the user submits
 * while one of its photos is being protected is held too, and submitted again (with its
 * submitter) once the photo is in the input: it would otherwise go without it.
 *
 * A file input outside the document (made and clicked by a script) or in a shadow root,
 * whose events never reach the window, is held from the page's world
 * (holdUnreachableInputs): the window's listeners cannot see it; so is a photo a script
 * reads through the File System Access API (holdPickedFiles) or from the clipboard
 * (holdClipboardImages).
 */

import { nativeGetter, nativeMethod, privateWeakMap } from "./natives.js";

const IMAGE_NAME = /\.(jpe?g|jfif|png|gif|webp|heic|heif|avif)$/i;
const DRAG_FIELDS = ["clientX", "clientY", "screenX", "screenY", "ctrlKey", "shiftKey", "altKey",
  "metaKey", "button", "buttons"];

// The page's world reads a photo's type and name through these, never its own replacements.
const [typeOf, nameOf] = [nativeGetter(Blob.prototype, "type"), nativeGetter(File.prototype, "name")];
const [startsWith, matches] = [nativeMethod(String.prototype, "startsWith"), nativeMethod(RegExp.prototype, "test")];

/** Whether a file may be an image (its bytes decide later; other files pass untouched). */
export function mayBeImage(file) {
  return startsWith(typeOf(file), "image/") || matches(IMAGE_NAME, nameOf(file));
}

/**
 * Whether a paste is copied text that comes with a picture of itself (office suites): it
 * pastes as text, untouched. A copied file's text is only its name (macOS Finder gives the
 * photo's own name, its File another: "image.png"): a photo.
 */
function textWithPicture(transfer) {
  if (!transfer.types.includes("text/plain")) return false;
  const names = Array.from(transfer.files, (file) => nameOf(file));
  return isOtherText(transfer.getData("text/plain"), names);
}

/** Whether copied `text` says more than the names of the files copied (`names`, or images'). */
function isOtherText(text, names = []) {
  const lines = text.split(/[\r\n]+/).map((line) => line.trim()).filter(Boolean);
  return lines.length > 0 && !lines.every((line) => names.includes(line) || matches(IMAGE_NAME, line));
}

/** Whether a drop's transfer holds a folder (Chromium lists it among its files, no type). */
function holdsFolder(transfer) {
  return Array.from(transfer.items ?? []).some((item) => item.webkitGetAsEntry?.()?.isDirectory === true);
}

function filesOf(list) {
  const transfer = new DataTransfer();
  for (const file of list) transfer.items.add(file);
  return transfer;
}

const given = privateWeakMap();  // FileList -> true: the lists giveInput put in inputs

/** Give a file input `files`, as the browser does when the user picks or drops them. */
function giveInput(input, files) {
  input.files = filesOf(files).files;
  given.set(input.files, true);
  input.dispatchEvent(new Event("input", { bubbles: true, composed: true }));
  input.dispatchEvent(new Event("change", { bubbles: true }));
}

/**
 * The browser's `change` that follows a held `input` of a file input in a shadow root: it is
 * not composed, so it never reaches the window, and the page would read the emptied input.
 * Stopped at the shadow root, the first stop of its path, in the same task as the `input`
 * (the browser fires both at once); the protected choice's own (untrusted) events go by.
 */
function holdShadowChange(input) {
  const root = input.getRootNode();
  if (!(root instanceof ShadowRoot)) return;
  const stop = (event) => {
    if (event.isTrusted && event.composedPath()[0] === input) event.stopImmediatePropagation();
  };
  root.addEventListener("change", stop, true);
  setTimeout(() => root.removeEventListener("change", stop, true), 0);
}

/**
 * What holds a choice: given a trusted `input` or `change` event of a file input, it stops
 * the event, empties the input, and once `protectFiles` answers gives the input the files
 * and fires `input` and `change` again. `holdChoice.pendingIn(form)`: the choices of the
 * form's inputs still being protected, each a promise of whether the page got files (false:
 * refused, or protection failed). `holdChoice.choose(input, files)`: a choice the browser
 * did not make (a drop the extension held), protected and given the same way, and the
 * latest of the input's choices; `holdChoice.isPending(input)`; `holdChoice.drop(input)`:
 * the input's choice is not given to it when protected (its form was reset meanwhile).
 * @param {(files: File[]) => Promise<File[] | null>} protectFiles as for interceptChoices.
 * @returns {((event: Event, input: HTMLInputElement) => void) & {choose: (input: HTMLInputElement, files: File[]) => void, isPending: (input: HTMLInputElement) => boolean, pendingIn: (form: HTMLFormElement) => Promise<boolean>[], drop: (input: HTMLInputElement) => void}}
 */
export function choiceHolder(protectFiles) {
  const pending = new WeakMap();  // input -> the choice being protected
  /** The user's latest choice of `files` for `input`, protected, then given to it. */
  const choose = (input, files) => {
    const choice = protectFiles(files).then((chosen) => {
      if (pending.get(input) !== choice) return true;  // the user chose again meanwhile
      pending.delete(input);
      if (chosen === null) return false;
      giveInput(input, chosen);
      return true;
    }, (error) => {
      if (pending.get(input) === choice) pending.delete(input);
      console.error("GRASP Guard could not protect the photo", error);
      return false;
    });
    pending.set(input, choice);
  };
  const holdChoice = (event, input) => {
    const files = [...(input.files ?? [])];
    if (pending.has(input) && files.length === 0) {
      event.stopImmediatePropagation();  // the `change` after the `input` we hold
      return;
    }
    if (files.length > 0) pending.delete(input);  // a later choice: the earlier one's result is not the page's
    if (!files.some(mayBeImage)) return;
    event.stopImmediatePropagation();
    input.files = new DataTransfer().files;
    if (event.type === "input") holdShadowChange(input);
    choose(input, files);
  };
  holdChoice.choose = choose;
  holdChoice.isPending = (input) => pending.has(input);
  holdChoice.pendingIn = (form) => [...form.elements].filter((el) => pending.has(el)).map((el) => pending.get(el));
  holdChoice.drop = (input) => { pending.delete(input); };
  return holdChoice;
}

/**
 * A trusted submit of a form whose photo is being protected: held until every choice of
 * its inputs settles, then made again once, with the last submitter, unless one was
 * refused. A second click meanwhile (nothing seems to happen) joins the one held. A form
 * whose `required` file input is empty while its photo is protected fails the browser's
 * validation, and no submit comes: the `invalid` of that input, in the task of the user's
 * own click on a submit button (or Enter in the form), is held as that submit.
 * @param {Window} win
 * @param {ReturnType<typeof choiceHolder>} holdChoice
 * @returns {{submit: (event: SubmitEvent) => void, invalid: (event: Event) => void, activate: (event: Event) => void}}
 */
function submitHolder(win, holdChoice) {
  const held = new WeakMap();  // form -> the submitter of its held submit
  let activated = null;  // {form, submitter}: the user's submit in this task
  const settled = async (form) => {
    let given = true;
    for (let waits = holdChoice.pendingIn(form); waits.length; waits = holdChoice.pendingIn(form)) {
      given = (await Promise.all(waits)).every(Boolean);  // the latest choices decide
    }
    return given;
  };
  const hold = (form, submitter) => {
    const waiting = held.has(form);
    held.set(form, submitter);
    if (waiting) return;
    settled(form).then((given) => {
      const submitter = held.get(form);
      held.delete(form);
      if (!given || !form.isConnected) return;
      try {
        form.requestSubmit(submitter);
      } catch {  // the submitter left the form meanwhile
        form.requestSubmit();
      }
    });
  };
  return {
    submit: (event) => {
      const form = event.target;
      if (!event.isTrusted || !(form instanceof win.HTMLFormElement)) return;
      if (!held.has(form) && holdChoice.pendingIn(form).length === 0) return;
      event.preventDefault();
      event.stopImmediatePropagation();
      hold(form, event.submitter);
    },
    invalid: (event) => {
      const input = event.target;
      // the browser's own validation, after the click or key went through the page's
      // listeners (a page's reportValidity() in one of them is the page's)
      if (!event.isTrusted || !holdChoice.isPending(input) || activated?.form !== input.form ||
          activated.event.eventPhase !== Event.NONE || activated.event.defaultPrevented) return;
      event.preventDefault();  // no "select a file" bubble: the photo is on its way
      hold(input.form, activated.submitter);
    },
    activate: (event) => {
      if (!event.isTrusted) return;
      // the submit button clicked (its label or icon may be what was hit), or Enter in a field
      const node = event.composedPath().find((n) => n instanceof win.HTMLElement && n.form &&
        (event.type === "click" ? n.type === "submit" || n.type === "image" : event.key === "Enter"));
      if (node === undefined) return;
      activated = { form: node.form, submitter: event.type === "click" ? node : null, event };
      setTimeout(() => { activated = null; }, 0);  // the browser validates in the same task
    },
  };
}

/**
 * File inputs whose events never reach the window first (made and clicked by a script
 * without being put in the document, or in a shadow root): from the page's world, capture
 * listeners that run before the page's own on the way to the input. They are added to a
 * node when a script first listens to its `input` or `change` (the input, or a detached
 * container of it, listened to in the capture phase before the picker opens, would
 * otherwise come first), to a file input when a script opens its picker (its `click` or a
 * label's, `showPicker`, a dispatched `click`), and to every shadow root a script attaches.
 * The `input` of a closed shadow root's file input reaches the window's listeners as its
 * host's, before the root's: held at the window too, found through the roots recorded
 * here. They act only on a trusted choice in a file input outside the document: the
 * window's listeners hold the others (an open shadow root's `input` among them; its
 * `change`, which stays in the shadow tree, is stopped here). Checks hold across frames:
 * a same-origin frame's patched built-ins may be called on this window's nodes.
 * @param {Window} win the page's own window (its prototypes are the page's).
 * @param {(event: Event, input: HTMLInputElement) => void} holdChoice a choiceHolder.
 * @returns {() => void} adds the window's listener again (after `document.open()`).
 */
export function holdUnreachableInputs(win, holdChoice) {
  const watched = privateWeakMap();  // node -> true
  const closedRoots = privateWeakMap();  // host -> its closed shadow root
  const target = win.EventTarget.prototype;
  const listen = target.addEventListener;  // the browser's: the extension's own go straight to it
  const isFileInput = brandCheck(win.HTMLInputElement.prototype, "type", (type) => type === "file");
  const isNode = brandCheck(win.Node.prototype, "nodeType", () => true);
  // a keystroke's `input` (a text field's); a file input's is a plain Event
  const isInputEvent = win.InputEvent ? brandCheck(win.InputEvent.prototype, "inputType", () => true) : () => false;
  const controlOf = win.HTMLLabelElement ? brandGetter(win.HTMLLabelElement.prototype, "control") : () => null;
  const closestLabel = win.Element ? brandMethod(win.Element.prototype, "closest") : () => null;
  const shadowOf = win.Element ? brandGetter(win.Element.prototype, "shadowRoot") : () => null;
  const filesOfInput = nativeGetter(win.HTMLInputElement.prototype, "files");
  const countOf = win.FileList ? nativeGetter(win.FileList.prototype, "length") : (list) => list.length;
  const allUnder = win.DocumentFragment ? nativeMethod(win.DocumentFragment.prototype, "querySelectorAll") : () => [];
  const itemOf = win.NodeList ? nativeMethod(win.NodeList.prototype, "item") : (list, i) => list[i];
  const countNodes = win.NodeList ? nativeGetter(win.NodeList.prototype, "length") : (list) => list.length;
  const onChoice = (event) => {
    const input = event.composedPath()[0];
    if (!event.isTrusted || !isFileInput(input) || input.getRootNode() === win.document) return;
    if (event.type === "change" && input.files.length === 0) {
      // the browser's `change` after an `input` the content script holds (it emptied the
      // input): a user's own choice never empties a file input
      event.stopImmediatePropagation();
      return;
    }
    holdChoice(event, input);
  };
  const watch = (node) => {
    if (watched.get(node)) return;
    watched.set(node, true);
    listen.call(node, "input", onChoice, true);
    listen.call(node, "change", onChoice, true);
  };
  // The file input whose picker opened last in each closed root: a click on it or its label
  // (the user's, or the page's own `click()`), seen in the root, where the window sees only
  // the host; or `showPicker()`.
  const opened = privateWeakMap();  // closed root -> that input
  const rootOf = nativeMethod(win.Node.prototype, "getRootNode");
  const recordOpened = (event) => {
    const node = event.composedPath()[0];
    const label = isFileInput(node) ? null : closestLabel(node, "label");
    const input = label ? controlOf(label) : node;
    if (isFileInput(input)) opened.set(event.currentTarget, input);
  };
  /** [root, input]: the input opened in a closed root (or one within it) that holds a choice
   * the extension did not give it (read through the built-ins: a page's own cannot hide one). */
  const openedUnder = (root) => {
    const input = opened.get(root);
    if (input && countOf(filesOfInput(input)) > 0 && !given.get(filesOfInput(input))) return [root, input];
    const nodes = allUnder(root, "*");
    for (let i = 0; i < countNodes(nodes); i++) {
      const inner = closedRoots.get(itemOf(nodes, i)) ?? shadowOf(itemOf(nodes, i));
      const found = inner ? openedUnder(inner) : null;
      if (found) return found;
    }
    return null;
  };
  const onHostChoice = (event) => {
    const root = event.isTrusted && !isInputEvent(event) ? closedRoots.get(event.composedPath()[0]) : undefined;
    const found = root === undefined ? null : openedUnder(root);
    if (found === null) return;
    opened.delete(found[0]);
    holdChoice(event, found[1]);
  };
  // Patched where it is defined, so that a library wrapping it later (zone.js, an error
  // tracker) wraps this one, and the page's listeners go through both.
  target.addEventListener = function addEventListener(type, ...rest) {
    if ((type === "input" || type === "change") && isNode(this) && this !== win.document) watch(this);
    return listen.call(this, type, ...rest);
  };
  // Every shadow root a script makes, closed ones too, is watched from its start: before
  // any listener the page adds to it, whatever handler reads its inputs (a property, none).
  const attach = win.Element?.prototype.attachShadow;
  if (typeof attach === "function") {
    win.Element.prototype.attachShadow = function attachShadow(...args) {
      const root = attach.apply(this, args);
      watch(root);
      if (args[0]?.mode === "closed") {
        closedRoots.set(this, root);
        listen.call(root, "click", recordOpened, true);
      }
      return root;
    };
  }
  // A picker opens on a file input's activation: its click (HTMLElement's, or a label's for
  // it, or an element's in that label), a dispatched click, or showPicker.
  const watchPicker = (node) => {
    const label = isFileInput(node) ? null : closestLabel(node, "label");
    const input = label ? controlOf(label) : node;
    if (!isFileInput(input)) return;
    watch(input);
    opened.set(rootOf(input), input);
  };
  const opener = (proto, name, opens = () => true) => {
    const open = proto?.[name];
    if (typeof open !== "function") return;
    proto[name] = function openPicker(...args) {
      if (opens(args)) watchPicker(this);
      return open.apply(this, args);
    };
  };
  opener(win.HTMLElement?.prototype, "click");
  opener(win.HTMLInputElement.prototype, "showPicker");
  opener(target, "dispatchEvent", ([event]) => event?.type === "click");
  const install = () => listen.call(win, "input", onHostChoice, true);
  install();
  return install;
}

/** A check of `proto`'s brand through its native `name` getter (`test` of the value):
 * false for any object without that brand, in any frame. */
function brandCheck(proto, name, test) {
  const get = brandGetter(proto, name);
  return (object) => {
    const value = get(object);
    return value !== null && test(value);
  };
}

/** `proto`'s native method `name`, as a function of any object and its arguments: null where
 * it has not the brand (a document's `closest`). */
function brandMethod(proto, name) {
  const method = nativeMethod(proto, name);
  return (object, ...args) => {
    try {
      return object === null || typeof object !== "object" ? null : method(object, ...args);
    } catch {
      return null;
    }
  };
}

/** `proto`'s native `name` getter, as a function of any object: null where it has not the brand. */
function brandGetter(proto, name) {
  const get = nativeGetter(proto, name);
  return (object) => {
    try {
      return object === null || typeof object !== "object" ? null : get(object);
    } catch {
      return null;
    }
  };
}

/**
 * Call `reopened` after each `document.open()` of the window's document (and `write`, which
 * opens a loaded one): it removes every listener of the window and the document, the
 * extension's too. A write while the page is parsed (an ad's) opens nothing: its root stays.
 * @param {Window} win the page's own window.
 * @param {() => void} reopened
 */
export function watchDocumentOpen(win, reopened) {
  const proto = win.Document.prototype;
  const rootOf = nativeGetter(proto, "documentElement");
  for (const name of ["open", "write", "writeln"]) {
    const method = proto[name];
    if (typeof method !== "function") continue;
    proto[name] = {
      [name](...args) {
        const root = this === win.document ? rootOf(this) : undefined;
        try {
          return method.apply(this, args);
        } finally {
          if (root !== undefined && rootOf(this) !== root) reopened();
        }
      },
    }[name];
  }
}

/**
 * The protected copy of a file a page script reads; refused, it rejects as the File System
 * Access and clipboard APIs refuse a read. The file is never awaited: that would look up its
 * `then`, which a page script may have defined on a prototype.
 */
async function protectedCopy(win, protectFiles, file) {
  const chosen = await protectFiles([file]);
  if (chosen === null) {
    throw new win.DOMException("GRASP Guard refused the photo: it could not be protected", "NotAllowedError");
  }
  return chosen[0];
}

/** Awaits a cached copy; a failed one is forgotten (`forget`, if still cached): the next read tries again. */
async function awaitCached(copy, forget) {
  try {
    return await copy;
  } catch (error) {
    forget(copy);
    throw error;
  }
}

/**
 * Photos a page script reads through the File System Access API (a handle from
 * `showOpenFilePicker`, `showDirectoryPicker`, a drop, a clone of one, IndexedDB), from the
 * page's world: an image a handle reads (`getFile`) is its protected copy once protected,
 * or the read rejects if it was refused; a photo changed on disk since is protected again.
 * A file in the origin's private file system (the page's own) reads as it is.
 * @param {Window} win the page's own window (its prototypes are the page's).
 * @param {(files: File[]) => Promise<File[] | null>} protectFiles as for interceptChoices.
 */
export function holdPickedFiles(win, protectFiles) {
  const Handle = win.FileSystemFileHandle;
  if (typeof Handle !== "function") return;
  const read = nativeMethod(Handle.prototype, "getFile");
  const sizeOf = nativeGetter(win.Blob.prototype, "size");
  const modifiedOf = nativeGetter(win.File.prototype, "lastModified");
  const storage = win.navigator?.storage;
  const privateRoot = storage && win.StorageManager?.prototype.getDirectory ? nativeMethod(win.StorageManager.prototype, "getDirectory") : null;
  const resolve = win.FileSystemDirectoryHandle?.prototype.resolve ? nativeMethod(win.FileSystemDirectoryHandle.prototype, "resolve") : null;
  const inPrivateFiles = async (handle) => {
    if (privateRoot === null || resolve === null) return false;
    try {
      return (await resolve(await privateRoot(storage), handle)) !== null;
    } catch {
      return false;
    }
  };
  const copies = privateWeakMap();  // handle -> its last photo read: {size, modified, copy}
  Handle.prototype.getFile = async function getFile() {
    const file = await read(this);
    if (!mayBeImage(file) || await inPrivateFiles(this)) return file;
    const size = sizeOf(file);
    const modified = modifiedOf(file);
    const last = copies.get(this);
    if (last !== undefined && last.size === size && last.modified === modified) return last.copy;
    const copy = protectedCopy(win, protectFiles, file);
    copies.set(this, { size, modified, copy });
    return awaitCached(copy, (failed) => copies.get(this)?.copy === failed && copies.delete(this));
  };
}

/**
 * Images a page script reads from the clipboard (`navigator.clipboard.read()`), from the
 * page's world: an image of a clipboard item is protected when the page asks for it
 * (`getType`), once per item and type, and a refused one rejects. As with a paste, copied
 * text that comes with a picture of itself stays as it is (text that is only image file
 * names, a copied file's, is a photo).
 * @param {Window} win the page's own window (its prototypes are the page's).
 * @param {(blobs: Blob[]) => Promise<File[] | null>} protectFiles as for interceptChoices,
 *   given the clipboard's Blob.
 */
export function holdClipboardImages(win, protectFiles) {
  const Item = win.ClipboardItem;
  if (typeof Item !== "function") return;
  const getType = nativeMethod(Item.prototype, "getType");
  const typesOf = nativeGetter(Item.prototype, "types");
  const includes = nativeMethod(Array.prototype, "includes");
  const textOf = nativeMethod(win.Blob.prototype, "text");
  const asked = privateWeakMap();  // item -> its images asked for, by type (no prototype)
  Item.prototype.getType = async function getImage(type) {
    const types = typesOf(this);
    if (!startsWith(String(type), "image/") || !includes(types, type) ||
        (includes(types, "text/plain") && isOtherText(await textOf(await getType(this, "text/plain"))))) {
      return getType(this, type);
    }
    const images = asked.get(this) ?? Object.create(null);
    asked.set(this, images);
    images[type] ??= (async () => protectedCopy(win, protectFiles, await getType(this, type)))();
    return awaitCached(images[type], (failed) => images[type] === failed && delete images[type]);
  };
}

/**
 * Hold and protect the photos chosen, dropped or pasted in `win`.
 * @param {Window} win
 * @param {(files: File[]) => Promise<File[] | null>} protectFiles the files to give the
 *   page (protected or, per on_failure, the originals), or null: refused.
 * @param {() => boolean} refusesFolder called on a drop that holds a folder (its photos
 *   cannot be protected: a script-made drop carries no folder): true, the drop is refused
 *   and never reaches the page; false, it goes as it is.
 * @param {() => boolean} active whether a site of the page is on now: when none is, a
 *   choice, drop or paste is the browser's and the page's alone.
 * @returns {() => void} adds the listeners again (after `document.open()` removed them).
 */
export function interceptChoices(win, protectFiles, refusesFolder = () => false, active = () => true) {
  const holdChoice = choiceHolder(protectFiles);
  const onChoice = (event) => {
    if (!event.isTrusted || !active()) return;
    const input = event.composedPath()[0];
    if (!(input instanceof win.HTMLInputElement) || input.type !== "file") return;
    holdChoice(event, input);
  };
  /** A drop or a paste: held, and made again with the protected files. */
  const onTransfer = (transferOf, remake, keeps = () => false) => (event) => {
    const transfer = transferOf(event);
    if (!event.isTrusted || !transfer || keeps(transfer) || !active()) return;
    if (holdsFolder(transfer)) {
      if (refusesFolder()) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
      return;
    }
    const files = [...transfer.files];
    if (!files.some(mayBeImage)) return;
    const strings = transfer.types.filter((t) => t !== "Files").map((t) => [t, transfer.getData(t)]);
    const target = event.composedPath()[0];
    event.preventDefault();  // the browser would open the file, or paste the original
    event.stopImmediatePropagation();
    if (event.type === "drop" && target instanceof win.HTMLInputElement && target.type === "file") {
      holdChoice.choose(target, target.multiple ? files : files.slice(0, 1));  // the browser's own drop
      return;
    }
    protectFiles(files).then((chosen) => {
      if (chosen === null) return;
      const carried = filesOf(chosen);
      for (const [type, value] of strings) carried.setData(type, value);
      (target.isConnected ? target : win.document).dispatchEvent(remake(event, carried));
    }, (error) => console.error("GRASP Guard could not protect the photo", error));
  };
  const submits = submitHolder(win, holdChoice);
  /** A form reset (its reset button, the page's `form.reset()`) while a photo of it is being
   * protected: the photo is not put back once protected; the user or the page cleared it. */
  const onReset = (event) => {
    const form = event.target;
    if (!event.isTrusted || !(form instanceof win.HTMLFormElement)) return;
    setTimeout(() => {  // after the page's listeners: one may cancel the reset
      if (event.defaultPrevented) return;
      for (const element of form.elements) holdChoice.drop(element);
    }, 0);
  };
  const dragFields = (event) => Object.fromEntries(DRAG_FIELDS.map((k) => [k, event[k]]));
  const listeners = {
    input: onChoice,
    change: onChoice,
    submit: submits.submit,
    reset: onReset,
    invalid: submits.invalid,
    click: submits.activate,
    keydown: submits.activate,
    drop: onTransfer((e) => e.dataTransfer, (held, dataTransfer) =>
      new DragEvent("drop", { ...dragFields(held), bubbles: true, cancelable: true, composed: true, dataTransfer })),
    paste: onTransfer((e) => e.clipboardData, (_held, clipboardData) =>
      new ClipboardEvent("paste", { bubbles: true, cancelable: true, composed: true, clipboardData }),
    textWithPicture),
  };
  // The same listeners each time: added again after `document.open()`, which removes every
  // listener of the window (the page-world script says when), never twice.
  const install = () => {
    for (const [type, listener] of Object.entries(listeners)) win.addEventListener(type, listener, true);
  };
  install();
  return install;
}
