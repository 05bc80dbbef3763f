/** A small history router under /portal/: links are real <a href>s, so the keyboard and new tabs work. */
import { useEffect, useState } from "preact/hooks";

export const BASE = "/portal";

const listeners = new Set<() => void>();

export function navigate(path: string, opts: { replace?: boolean } = {}) {
  const url = path.startsWith(BASE) ? path : `${BASE}${path}`;
  if (opts.replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  for (const l of listeners) l();
}

/** The current location under /portal ("/costs", "/invoices/inv_…"), and its query. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const update = () => setTick((t) => t + 1);
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) || "/" : "/";
  return { path: path.length > 1 ? path.replace(/\/+$/, "") : path, query: new URLSearchParams(location.search) };
}

/** Follows in-app links without reloading (plain clicks only: modified clicks open tabs as usual). */
export function interceptLinks(root: HTMLElement) {
  root.addEventListener("click", (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element).closest("a");
    if (!a || a.target || a.origin !== location.origin || !a.pathname.startsWith(`${BASE}/`)) return;
    e.preventDefault();
    navigate(a.pathname + a.search);
  });
}
