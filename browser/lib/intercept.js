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
 * fires). Refused photos (on_failure: block) never reach the page.
 *
 * Not held: a file input outside the document (made and clicked by a script) or in a
 * shadow root, whose events never reach the window.
 */

const IMAGE_NAME = /\.(jpe?g|jfif|png|gif|webp|heic|heif|avif)$/i;
const DRAG_FIELDS = ["clientX", "clientY", "screenX", "screenY", "ctrlKey", "shiftKey", "altKey",
  "metaKey", "button", "buttons"];

/** Whether a file may be an image (its bytes decide later; other files pass untouched). */
export function mayBeImage(file) {
  return file.type.startsWith("image/") || IMAGE_NAME.test(file.name);
}

function filesOf(list) {
  const transfer = new DataTransfer();
  for (const file of list) transfer.items.add(file);
  return transfer;
}

/**
 * Hold and protect the photos chosen, dropped or pasted in `win`.
 * @param {Window} win
 * @param {(files: File[]) => Promise<File[] | null>} protectFiles the files to give the
 *   page (protected or, per on_failure, the originals), or null: refused.
 */
export function interceptChoices(win, protectFiles) {
  const pending = new WeakMap();  // input -> the choice being protected
  const onChoice = (event) => {
    if (!event.isTrusted) return;
    const input = event.composedPath()[0];
    if (!(input instanceof win.HTMLInputElement) || input.type !== "file") return;
    const files = [...(input.files ?? [])];
    if (pending.has(input) && files.length === 0) {
      event.stopImmediatePropagation();  // the `change` after the `input` we hold
      return;
    }
    if (!files.some(mayBeImage)) return;
    event.stopImmediatePropagation();
    const choice = {};
    pending.set(input, choice);
    input.files = new DataTransfer().files;
    protectFiles(files).then((chosen) => {
      if (pending.get(input) !== choice) return;  // the user chose again meanwhile
      pending.delete(input);
      if (chosen === null) return;
      input.files = filesOf(chosen).files;
      input.dispatchEvent(new Event("input", { bubbles: true, composed: true }));
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }, (error) => console.error("GRASP Guard could not protect the photo", error));
  };
  /** A drop or a paste: held, and made again with the protected files. */
  const onTransfer = (transferOf, remake, keeps = () => false) => (event) => {
    const transfer = transferOf(event);
    if (!event.isTrusted || !transfer || keeps(transfer)) return;
    const files = [...transfer.files];
    if (!files.some(mayBeImage)) return;
    const strings = transfer.types.filter((t) => t !== "Files").map((t) => [t, transfer.getData(t)]);
    const target = event.composedPath()[0];
    const init = Object.fromEntries(DRAG_FIELDS.map((k) => [k, event[k]]));
    event.preventDefault();  // the browser would open the file, or paste the original
    event.stopImmediatePropagation();
    protectFiles(files).then((chosen) => {
      if (chosen === null) return;
      const carried = filesOf(chosen);
      for (const [type, value] of strings) carried.setData(type, value);
      (target.isConnected ? target : win.document).dispatchEvent(remake(init, carried));
    }, (error) => console.error("GRASP Guard could not protect the photo", error));
  };
  win.addEventListener("input", onChoice, true);
  win.addEventListener("change", onChoice, true);
  win.addEventListener("drop", onTransfer((e) => e.dataTransfer, (init, dataTransfer) =>
    new DragEvent("drop", { ...init, bubbles: true, cancelable: true, composed: true, dataTransfer })), true);
  // Copied text comes with a picture of itself (office suites): it pastes as text, untouched.
  win.addEventListener("paste", onTransfer((e) => e.clipboardData, (init, clipboardData) =>
    new ClipboardEvent("paste", { bubbles: true, cancelable: true, composed: true, clipboardData }),
  (transfer) => transfer.types.includes("text/plain")), true);
}
