/**
 * What the background worker remembers per tab, in `chrome.storage.session` (the worker
 * may be stopped between a photo's protection and its upload): the SHA-256 of the images
 * it protected there, so that a protected photo the page then uploads is not protected
 * twice, and the last notices, for the popup.
 */

const KEEP_DIGESTS = 1000;  // an album of photos chosen at once, each uploaded after (64 KB a tab)
const KEEP_NOTICES = 10;

const key = (tabId) => `tab:${tabId}`;

/** Hex SHA-256 of `data`. */
export async function sha256(data) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export class TabLog {
  #queue = Promise.resolve();

  constructor(storage = chrome.storage.session) {
    this.storage = storage;
  }

  async #read(tabId) {
    const entry = (await this.storage.get(key(tabId)))[key(tabId)];
    return { digests: [], notices: [], ...entry };
  }

  /** Read, change and write the tab's entry, one update after another: concurrent ones
   * (the photos of one choice are protected at once) would each write over the others. */
  #update(tabId, change) {
    const update = this.#queue.then(async () => {
      const entry = await this.#read(tabId);
      change(entry);
      await this.storage.set({ [key(tabId)]: entry });
    });
    this.#queue = update.catch(() => {});
    return update;
  }

  /** Whether the image with this digest came out of a protection in this tab. */
  async wasProtected(tabId, digest) {
    return (await this.#read(tabId)).digests.includes(digest);
  }

  async addProtected(tabId, digest) {
    await this.#update(tabId, (entry) => {
      entry.digests = [...entry.digests.filter((d) => d !== digest), digest].slice(-KEEP_DIGESTS);
    });
  }

  async addNotice(tabId, notice) {
    await this.#update(tabId, (entry) => {
      entry.notices = [...entry.notices, { ...notice, time: Date.now() }].slice(-KEEP_NOTICES);
    });
  }

  async notices(tabId) {
    return (await this.#read(tabId)).notices;
  }

  /** Drop the tab's entry, after the updates queued before it (one still in flight would
   * otherwise write the closed tab's entry back). */
  forget(tabId) {
    const removal = this.#queue.then(() => this.storage.remove(key(tabId)));
    this.#queue = removal.catch(() => {});
    return removal;
  }
}
