/**
 * The private line between the extension's two scripts in a page. The content script
 * (isolated world) makes a MessageChannel and posts one end to the window at
 * document_start; the extension's page-world script, also run at document_start and so
 * before any page script, listens first and stops the message, so that no page script
 * ever sees that port. Messages posted to a window are delivered in the order posted,
 * and ours is posted before any page script runs: a page's forged offer always arrives
 * after the genuine one, which is the only one taken. Whatever arrives on the content
 * script's end of the channel therefore comes from the extension's page-world script.
 */

import { nativeGetter, nativeMethod } from "./natives.js";

export const OFFER = "grasp-guard:port";
/** The content script's message on the port naming the sites switched off (`names`). */
export const SITES_OFF = "sites-off";
/** The page-world script's message: `document.open()` removed the window's listeners. */
export const REOPENED = "document-reopened";

/** Content script side: offer a port to the page-world script; returns our end. */
export function offerPort(win) {
  const channel = new MessageChannel();
  win.postMessage({ [OFFER]: true }, "*", [channel.port2]);
  return channel.port1;
}

/**
 * Page-world side: take the first offer posted to `win` and hide every offer from the
 * page's own listeners. The built-ins used, then and later, are captured now and called
 * through `Reflect.apply` (lib/natives.js), so that no built-in a page script replaces
 * later, `Function.prototype.call` included, gets hold of the port.
 * @param {Window} win
 * @param {(port: {post: (message: object) => void, listen: (handler: (data: any) => void) => void}) => void} onPort
 *   called once, with the extension's port (its methods bound to the captured built-ins).
 */
export function takePort(win, onPort) {
  const listen = nativeMethod(EventTarget.prototype, "addEventListener");
  const stop = nativeMethod(Event.prototype, "stopImmediatePropagation");
  const post = nativeMethod(MessagePort.prototype, "postMessage");
  const start = nativeMethod(MessagePort.prototype, "start");
  const dataOf = nativeGetter(MessageEvent.prototype, "data");
  const portsOf = nativeGetter(MessageEvent.prototype, "ports");
  const sourceOf = nativeGetter(MessageEvent.prototype, "source");
  let taken = false;
  listen(win, "message", (event) => {
    const data = dataOf(event);
    if (sourceOf(event) !== win || typeof data !== "object" || data === null || data[OFFER] !== true) return;
    stop(event);
    const ports = portsOf(event);
    if (taken || ports.length !== 1) return;
    taken = true;
    const port = ports[0];
    onPort({
      post: (message) => post(port, message),
      listen: (handler) => {
        listen(port, "message", (e) => handler(dataOf(e)));
        start(port);
      },
    });
  }, true);
}
