/**
 * Beacons (`navigator.sendBeacon`) that may carry a photo to an upload the page's policy
 * matches, declined from the page's world: the browser queues a beacon at once, with no
 * time to protect its photo, so `sendBeacon` answers false, as when it cannot queue one,
 * and the page's fallback (fetch or XHR, which the extension protects) sends it. Every
 * other beacon goes as it is.
 */

import { carriesImage } from "../sdk/index.js";

/**
 * @param {Window} win the page's own window (its prototypes are the page's).
 * @param {() => import("../sdk/index.js").Policy} policyOf the page's policy as it stands
 *   (the user may switch a site off while the page is open).
 */
export function declinePhotoBeacons(win, policyOf) {
  const proto = win.Navigator?.prototype;
  const send = proto?.sendBeacon;
  if (typeof send !== "function") return;
  proto.sendBeacon = function sendBeacon(url, data = null) {
    let target = null;
    try {
      target = new URL(String(url), win.location.href).href;
    } catch {
      // the browser's own sendBeacon throws its TypeError
    }
    if (target !== null && policyOf().match("POST", target) !== null && mayCarryPhoto(win, data)) return false;
    return Reflect.apply(send, this, arguments);
  };
}

/** Whether a beacon's data may carry a photo: a Blob or a form's file (not readable at
 * once), or bytes and text that carry an image. */
function mayCarryPhoto(win, data) {
  if (data === null || data === undefined) return false;
  if (data instanceof win.Blob) return true;
  if (data instanceof win.FormData) {
    return [...data.values()].some((value) => value instanceof win.Blob || carriesImage(new TextEncoder().encode(value)));
  }
  if (data instanceof ArrayBuffer) return carriesImage(new Uint8Array(data));
  if (ArrayBuffer.isView(data)) return carriesImage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return carriesImage(new TextEncoder().encode(String(data)));  // a string, URLSearchParams
}
