import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = fileURLToPath(new URL(".", import.meta.url));

/**
 * The billing portal's build: src/portal → dist/portal, served by the API under /portal
 * (src/http/routes/portal/serve-pages.ts). JSX through Vite's own transformer (automatic runtime,
 * Preact), so no plugin is needed.
 */
export default defineConfig({
  root: here,
  base: "/portal/",
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: fileURLToPath(new URL("../../dist/portal", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    // No inline module preload polyfill: the page's Content-Security-Policy allows no inline script.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
});
