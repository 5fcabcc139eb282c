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
  const lines = transfer.getData("text/plain").split(/[\r\n]+/).map((line) => line.trim()).filter(Boolean);
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

/** Give a file input `files`, as the browser does when the user picks or drops them. */
function giveInput(input, files) {
  input.files = filesOf(files).files;
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
 * refused, or protection failed).
 * @param {(files: File[]) => Promise<File[] | null>} protectFiles as for interceptChoices.
 * @returns {((event: Event, input: HTMLInputElement) => void) & {pendingIn: (form: HTMLFormElement) => Promise<boolean>[]}}
 */
export function choiceHolder(protectFiles) {
  const pending = new WeakMap();  // input -> the choice being protected
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
  holdChoice.pendingIn = (form) => [...form.elements].filter((el) => pending.has(el)).map((el) => pending.get(el));
  return holdChoice;
}

/**
 * A trusted submit of a form whose photo is being protected: held until every choice of
 * its inputs settles, then made again once, with the last submitter, unless one was
 * refused. A second click meanwhile (nothing seems to happen) joins the one held.
 * @param {Window} win
 * @param {ReturnType<typeof choiceHolder>} holdChoice
 * @returns {(event: SubmitEvent) => void}
 */
function submitHolder(win, holdChoice) {
  const held = new WeakMap();  // form -> the submitter of its held submit
  const settled = async (form) => {
    let given = true;
    for (let waits = holdChoice.pendingIn(form); waits.length; waits = holdChoice.pendingIn(form)) {
      given = (await Promise.all(waits)).every(Boolean);  // the latest choices decide
    }
    return given;
  };
  return (event) => {
    const form = event.target;
    if (!event.isTrusted || !(form instanceof win.HTMLFormElement)) return;
    if (!held.has(form) && holdChoice.pendingIn(form).length === 0) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const waiting = held.has(form);
    held.set(form, event.submitter);
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
}

/**
 * File inputs whose events never reach the window (made and clicked by a script without
 * being put in the document, or in a shadow root): from the page's world, capture listeners
 * that run before the page's own on the way to the input. They are added to a node when a
 * script first listens to its `input` or `change` (the input, or a detached container of it,
 * listened to in the capture phase before the picker opens, would otherwise come first), to
 * a file input when a script opens its picker (`click`, `showPicker`), and to every shadow
 * root a script attaches. They act only on a trusted choice in a file input outside the
 * document: the window's listeners hold the others (an open shadow root's `input` among
 * them; its `change`, which stays in the shadow tree, is stopped here).
 * @param {Window} win the page's own window (its prototypes are the page's).
 * @param {(event: Event, input: HTMLInputElement) => void} holdChoice a choiceHolder.
 */
export function holdUnreachableInputs(win, holdChoice) {
  const watched = new WeakSet();
  const target = win.EventTarget.prototype;
  const listen = target.addEventListener;  // the browser's: the extension's own go straight to it
  const onChoice = (event) => {
    const input = event.composedPath()[0];
    if (!event.isTrusted || !(input instanceof win.HTMLInputElement) || input.type !== "file" ||
        input.getRootNode() === win.document) return;
    if (event.type === "change" && input.files.length === 0) {
      // the browser's `change` after an `input` the content script holds (it emptied the
      // input): a user's own choice never empties a file input
      event.stopImmediatePropagation();
      return;
    }
    holdChoice(event, input);
  };
  const watch = (node) => {
    if (watched.has(node)) return;
    watched.add(node);
    listen.call(node, "input", onChoice, true);
    listen.call(node, "change", onChoice, true);
  };
  // Patched where it is defined, so that a library wrapping it later (zone.js, an error
  // tracker) wraps this one, and the page's listeners go through both.
  target.addEventListener = function addEventListener(type, ...rest) {
    if ((type === "input" || type === "change") && this instanceof win.Node && this !== win.document) watch(this);
    return listen.call(this, type, ...rest);
  };
  // Every shadow root a script makes, closed ones too, is watched from its start: before
  // any listener the page adds to it, whatever handler reads its inputs (a property, none).
  const attach = win.Element?.prototype.attachShadow;
  if (typeof attach === "function") {
    win.Element.prototype.attachShadow = function attachShadow(...args) {
      const root = attach.apply(this, args);
      watch(root);
      return root;
    };
  }
  const proto = win.HTMLInputElement.prototype;
  for (const name of ["click", "showPicker"]) {
    const open = proto[name];
    if (typeof open !== "function") continue;
    proto[name] = function openPicker(...args) {
      if (this.type === "file") watch(this);
      return open.apply(this, args);
    };
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
 * text that comes with a picture of itself stays as it is.
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
  const asked = privateWeakMap();  // item -> its images asked for, by type (no prototype)
  Item.prototype.getType = async function getImage(type) {
    const types = typesOf(this);
    if (!startsWith(String(type), "image/") || !includes(types, type) || includes(types, "text/plain")) {
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
    protectFiles(files).then((chosen) => {
      if (chosen === null) return;
      if (event.type === "drop" && target instanceof win.HTMLInputElement && target.type === "file") {
        giveInput(target, target.multiple ? chosen : chosen.slice(0, 1));  // the browser's own drop
        return;
      }
      const carried = filesOf(chosen);
      for (const [type, value] of strings) carried.setData(type, value);
      (target.isConnected ? target : win.document).dispatchEvent(remake(event, carried));
    }, (error) => console.error("GRASP Guard could not protect the photo", error));
  };
  win.addEventListener("input", onChoice, true);
  win.addEventListener("change", onChoice, true);
  win.addEventListener("submit", submitHolder(win, holdChoice), true);
  const dragFields = (event) => Object.fromEntries(DRAG_FIELDS.map((k) => [k, event[k]]));
  win.addEventListener("drop", onTransfer((e) => e.dataTransfer, (held, dataTransfer) =>
    new DragEvent("drop", { ...dragFields(held), bubbles: true, cancelable: true, composed: true, dataTransfer })), true);
  win.addEventListener("paste", onTransfer((e) => e.clipboardData, (_held, clipboardData) =>
    new ClipboardEvent("paste", { bubbles: true, cancelable: true, composed: true, clipboardData }),
  textWithPicture), true);
}
