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
 * A file input outside the document (made and clicked by a script) or in a shadow root,
 * whose events never reach the window, is held from the page's world
 * (holdUnreachableInputs): the window's listeners cannot see it.
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
 * What holds a choice: given a trusted `input` or `change` event of a file input, it stops
 * the event, empties the input, and once `protectFiles` answers gives the input the files
 * and fires `input` and `change` again.
 * @param {(files: File[]) => Promise<File[] | null>} protectFiles as for interceptChoices.
 * @returns {(event: Event, input: HTMLInputElement) => void}
 */
export function choiceHolder(protectFiles) {
  const pending = new WeakMap();  // input -> the choice being protected
  return (event, input) => {
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
}

/**
 * File inputs whose events never reach the window (made and clicked by a script without
 * being put in the document, or in a shadow root): from the page's world, where a script
 * opens their file picker (`click`, `showPicker`), each gets its own capture listeners,
 * which run before the page's others on it.
 * @param {Window} win the page's own window (its prototypes are the page's).
 * @param {(event: Event, input: HTMLInputElement) => void} holdChoice a choiceHolder.
 */
export function holdUnreachableInputs(win, holdChoice) {
  const watched = new WeakSet();
  const proto = win.HTMLInputElement.prototype;
  for (const name of ["click", "showPicker"]) {
    const open = proto[name];
    if (typeof open !== "function") continue;
    proto[name] = function openPicker(...args) {
      if (this.type === "file" && this.getRootNode() !== win.document && !watched.has(this)) {
        watched.add(this);
        const onChoice = (event) => { if (event.isTrusted) holdChoice(event, this); };
        this.addEventListener("input", onChoice, true);
        this.addEventListener("change", onChoice, true);
      }
      return open.apply(this, args);
    };
  }
}

/**
 * Hold and protect the photos chosen, dropped or pasted in `win`.
 * @param {Window} win
 * @param {(files: File[]) => Promise<File[] | null>} protectFiles the files to give the
 *   page (protected or, per on_failure, the originals), or null: refused.
 */
export function interceptChoices(win, protectFiles) {
  const holdChoice = choiceHolder(protectFiles);
  const onChoice = (event) => {
    if (!event.isTrusted) return;
    const input = event.composedPath()[0];
    if (!(input instanceof win.HTMLInputElement) || input.type !== "file") return;
    holdChoice(event, input);
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
