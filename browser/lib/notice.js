/**
 * A notice on the page: a small toast in a closed shadow root (the page's styles cannot
 * reach it), announced to assistive technology (role alert, its text as the label).
 */

const SHOW_MS = 15_000;
const COLORS = { info: "#2e7d32", warning: "#b26b00", error: "#c62828" };

/** Show `text` at `level` (info | warning | error) on the page for a while. */
export function showNotice(doc, level, text) {
  const host = doc.createElement("grasp-guard-notice");
  host.setAttribute("role", "alert");
  host.setAttribute("aria-label", text);
  host.dataset.level = level;
  const root = host.attachShadow({ mode: "closed" });
  const box = doc.createElement("div");
  box.textContent = text;
  box.style.cssText = "position:fixed;z-index:2147483647;right:16px;bottom:16px;max-width:28em;" +
    `padding:10px 14px;border-radius:6px;color:#fff;background:${COLORS[level]};` +
    "font:14px/1.4 system-ui,sans-serif;box-shadow:0 2px 8px rgba(0,0,0,.3)";
  root.append(box);
  (doc.body ?? doc.documentElement).append(host);
  setTimeout(() => host.remove(), SHOW_MS);
}
