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

export const OFFER = "grasp-guard:port";

/** Content script side: offer a port to the page-world script; returns our end. */
export function offerPort(win) {
  const channel = new MessageChannel();
  win.postMessage({ [OFFER]: true }, "*", [channel.port2]);
  return channel.port1;
}

/**
 * Page-world side: take the first offer posted to `win` and hide every offer from the
 * page's own listeners. The built-ins used, then and later, are captured now, before a
 * page script can replace one to get hold of the port.
 * @param {Window} win
 * @param {(port: {post: (message: object) => void, listen: (handler: (data: any) => void) => void}) => void} onPort
 *   called once, with the extension's port (its methods bound to the captured built-ins).
 */
export function takePort(win, onPort) {
  const listen = EventTarget.prototype.addEventListener;
  const stop = Event.prototype.stopImmediatePropagation;
  const { postMessage, start } = MessagePort.prototype;
  const getter = (proto, name) => Object.getOwnPropertyDescriptor(proto, name).get;
  const [dataOf, portsOf, sourceOf] = ["data", "ports", "source"].map((n) => getter(MessageEvent.prototype, n));
  let taken = false;
  listen.call(win, "message", (event) => {
    const data = dataOf.call(event);
    if (sourceOf.call(event) !== win || typeof data !== "object" || data === null || data[OFFER] !== true) return;
    stop.call(event);
    const ports = portsOf.call(event);
    if (taken || ports.length !== 1) return;
    taken = true;
    const port = ports[0];
    onPort({
      post: (message) => postMessage.call(port, message),
      listen: (handler) => {
        listen.call(port, "message", (e) => handler(dataOf.call(e)));
        start.call(port);
      },
    });
  }, true);
}
