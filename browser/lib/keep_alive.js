/**
 * The background's service worker kept running while a protection is in flight. Chrome stops
 * an extension's service worker 30 s after its last event or extension API call, a pending
 * fetch not counting, and a protection on a CPU takes minutes: stopped, the worker's answer
 * to the content script never comes. An extension API call every `everyMs` resets that timer
 * (Chrome's own advice for long work); the five minutes one event may take still bound it.
 */

export const BEAT_MS = 20_000;

/**
 * `work`'s result, with `beat` called every `everyMs` until it settles.
 * @template T
 * @param {Promise<T>} work
 * @param {() => unknown} beat an extension API call (the browser's, by default).
 * @param {number} everyMs
 * @returns {Promise<T>}
 */
export async function keptAlive(work, beat = () => chrome.runtime.getPlatformInfo(), everyMs = BEAT_MS) {
  const timer = setInterval(() => {
    Promise.resolve().then(beat).catch(() => {});  // a failed beat is no failed protection
  }, everyMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}
