import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";

/** Debian's Chromium (`apt-get install -y chromium`; .ci/run installs it when missing). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Flags for a headless Chromium that works offline and as root, and calls no Google service. */
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/**
 * One Chromium per test file. Each `browser.newContext()` is a fresh profile (Playwright launches
 * with a new temporary --user-data-dir and removes it at close), so cookies never cross tests.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 60_000 });
}

export type PageProblems = { list: string[]; allow(pattern: RegExp): void };

/**
 * Records what a person would see go wrong on `page`: console errors and uncaught exceptions while
 * it shows a page of `origin`, and failed requests (no answer, or a 4xx/5xx) to `origin`. A test that expects one (a refused link)
 * allows it by pattern; the rest fail the test at its end.
 */
export function watchPage(page: Page, origin: string): PageProblems {
  const list: string[] = [];
  const allowed: RegExp[] = [];
  const add = (problem: string) => {
    if (!allowed.some((p) => p.test(problem))) list.push(problem);
  };
  // Only while the page shows ours: the processor's hosted page (its fake here) is not the portal.
  const ours = () => page.url().startsWith(origin);
  page.on("console", (m) => {
    if (m.type() === "error" && ours()) add(`console error: ${m.text()} (${m.location().url})`);
  });
  page.on("pageerror", (err) => {
    if (ours()) add(`uncaught: ${err.message}`);
  });
  page.on("requestfailed", (r) => {
    // ERR_ABORTED: the page left (a navigation, a closed tab) while a poll was in flight; the
    // browser cancelled it and a person sees nothing. Any other failure is a real one.
    if (r.failure()?.errorText === "net::ERR_ABORTED") return;
    if (r.url().startsWith(origin)) add(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => {
    if (r.url().startsWith(origin) && r.status() >= 400) add(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  return { list, allow: (p) => allowed.push(p) };
}

export const SCREENSHOT_DIR = join(process.cwd(), "test-results", "portal");

const WIDTHS = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } } as const;

/** Full-page screenshots at desktop and phone width, into test-results/portal/ (git-ignored). */
export async function screenshots(page: Page, name: string) {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const before = page.viewportSize();
  for (const [label, size] of Object.entries(WIDTHS)) {
    await page.setViewportSize(size);
    await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-${label}.png`), fullPage: true });
    if (label === "phone") await assertFitsWidth(page, name);
  }
  if (before) await page.setViewportSize(before);
}

/** The widths the portal is checked at: a desktop and a phone. */
export const PHONE = WIDTHS.phone;

/**
 * Nothing sticks out sideways at the page's current width: the page is no wider than the viewport,
 * and no part of it (a table, a code block) scrolls sideways inside it either. Throws what does.
 */
export async function assertFitsWidth(page: Page, name: string) {
  // A string: it runs in the page, whose DOM types the server's tsconfig does not have.
  const found = await page.evaluate<{ scrollWidth: number; viewport: number; scrollers: string[] }>(`({
    scrollWidth: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    scrollers: [...document.querySelectorAll("body *")]
      .filter((e) => ["auto", "scroll"].includes(getComputedStyle(e).overflowX) && e.scrollWidth > e.clientWidth + 1)
      .map((e) => e.tagName.toLowerCase() + "." + e.className + " (" + e.scrollWidth + "px in " + e.clientWidth + "px)"),
  })`);
  if (found.scrollWidth > found.viewport)
    throw new Error(`${name} is ${found.scrollWidth}px wide in a ${found.viewport}px wide screen`);
  if (found.scrollers.length) throw new Error(`${name} scrolls sideways inside: ${found.scrollers.join(", ")}`);
}
