import assert from "node:assert/strict";
import { test } from "node:test";

import { OFFER, takePort } from "../lib/handshake.js";

/**
 * A window stand-in: a MessagePort is an EventTarget that Node's MessageEvent accepts as a
 * `source`, and takePort only listens on the window.
 */
function stage() {
  const windowChannel = new MessageChannel();
  const win = windowChannel.port1;
  const taken = [];
  takePort(win, (port) => taken.push(port));
  const offer = new MessageChannel();
  const close = () => [windowChannel.port1, windowChannel.port2, offer.port1, offer.port2].forEach((p) => p.close());
  return { win, taken, offer, close };
}

test("the first offer from the window itself is taken and hidden from the page's listeners", () => {
  const { win, taken, offer, close } = stage();
  const pageSaw = [];
  win.addEventListener("message", (e) => pageSaw.push(e));
  win.dispatchEvent(new MessageEvent("message", { data: { [OFFER]: true }, source: win, ports: [offer.port2] }));
  win.dispatchEvent(new MessageEvent("message", { data: { [OFFER]: true }, source: win, ports: [new MessageChannel().port2] }));
  assert.equal(taken.length, 1);
  close();
  assert.deepEqual(pageSaw, []);
});

test("a page that replaces the built-ins after the extension started never sees the port", async () => {
  const { win, taken, offer, close } = stage();
  const seen = [];
  const saved = {
    call: Function.prototype.call,
    apply: Function.prototype.apply,
    ports: Object.getOwnPropertyDescriptor(MessageEvent.prototype, "ports"),
    post: MessagePort.prototype.postMessage,
    listen: EventTarget.prototype.addEventListener,
  };
  const record = (value) => { if (value instanceof MessagePort) seen.push(value); };
  try {
    Function.prototype.call = function (self, ...args) { record(self); args.forEach(record); return Reflect.apply(this, self, args); };
    Function.prototype.apply = function (self, args) { record(self); return Reflect.apply(this, self, args ?? []); };
    Object.defineProperty(MessageEvent.prototype, "ports", {
      configurable: true,
      get() { const ports = Reflect.apply(saved.ports.get, this, []); ports.forEach(record); return ports; },
    });
    MessagePort.prototype.postMessage = function (...args) { record(this); return Reflect.apply(saved.post, this, args); };
    EventTarget.prototype.addEventListener = function (...args) { record(this); return Reflect.apply(saved.listen, this, args); };

    win.dispatchEvent(new MessageEvent("message", { data: { [OFFER]: true }, source: win, ports: [offer.port2] }));
    const [port] = taken;
    const heard = new Promise((resolve) => port.listen(resolve));
    port.post({ hello: "content script" });
    offer.port1.postMessage({ hello: "page script" });
    const got = await heard;
    assert.deepEqual(got, { hello: "page script" });
  } finally {
    Function.prototype.call = saved.call;
    Function.prototype.apply = saved.apply;
    Object.defineProperty(MessageEvent.prototype, "ports", saved.ports);
    MessagePort.prototype.postMessage = saved.post;
    EventTarget.prototype.addEventListener = saved.listen;
    close();
  }
  assert.equal(seen.filter((p) => p === offer.port2).length, 0, "a page's replaced built-in saw the port");
});
