import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';

/*
 * The service's own web pages (/admin, /enroll) in Debian's Chromium: what a
 * test watches while it uses a page (console errors, Content-Security-Policy
 * reports, failed requests), the accessibility check (axe-core, run in the
 * page), and the screenshots it saves.
 */

/** Desktop and phone viewports (CSS pixels). */
export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };

export interface WatchedPage {
  context: BrowserContext;
  page: Page;
  /** Console errors, CSP reports and uncaught exceptions, as the browser wrote them. */
  complaints: string[];
  /** Requests that failed or answered 4xx/5xx: `status path`. */
  failures: string[];
  close(): Promise<void>;
}

/**
 * A new tab on `url`, watched from its first request. `expectedFailures`
 * (e.g. `409 /v1/...`) are answers a test provokes on purpose; any other
 * failure stays in `failures`.
 */
export async function openPage(
  browser: Browser,
  url: string,
  viewport = DESKTOP,
): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport, locale: 'en-US', timezoneId: 'UTC' });
  const page = await context.newPage();
  const complaints: string[] = [];
  const failures: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || /Content.Security.Policy/i.test(message.text())) {
      complaints.push(message.text());
    }
  });
  page.on('pageerror', (error) => complaints.push(error.message));
  page.on('requestfailed', (request) =>
    failures.push(`failed ${new URL(request.url()).pathname} ${request.failure()?.errorText}`),
  );
  page.on('response', (response) => {
    if (response.status() >= 400) {
      failures.push(`${response.status()} ${new URL(response.url()).pathname}`);
    }
  });
  const response = await page.goto(url);
  if (!response?.ok()) throw new Error(`${url} answered ${response?.status()}`);
  return { context, page, complaints, failures, close: () => context.close() };
}

/** axe-core's script, injected into a page by the test (never served by the service). */
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

/**
 * Runs axe-core (WCAG 2.0–2.2 A and AA rules and best practices) on the page
 * as it stands, and answers the violations of impact serious or critical.
 * DevTools evaluation is not subject to the page's Content-Security-Policy,
 * so the page keeps its own policy while axe runs.
 */
export async function seriousAccessibilityViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(AXE_SOURCE);
  const violations = (await page.evaluate(`
    axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
      resultTypes: ['violations'],
    }).then((results) => results.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => n.target.join(' ')),
    })))
  `)) as AxeViolation[];
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/**
 * Saves a full-page screenshot as `<name>.png` in SCREENSHOTS_DIR (default
 * `.tmp/screenshots`); `SCREENSHOTS_DIR=docs/screenshots` refreshes the ones
 * the README shows.
 */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  const folder = process.env.SCREENSHOTS_DIR ?? join('.tmp', 'screenshots');
  mkdirSync(folder, { recursive: true });
  const path = join(folder, `${name}.png`);
  await page.screenshot({ path, fullPage: true, animations: 'disabled' });
  return path;
}

/** The sign-in link the host application gives: the page, and the token in its fragment. */
export function signInLink(origin: string, page: '/admin' | '/enroll', jwt: string): string {
  return `${origin}${page}#token=${encodeURIComponent(jwt)}`;
}

/**
 * Waits (10 s at most) for `selector` to show `text`; on time-out, fails
 * saying what it showed and what the page's status line said.
 */
export async function expectText(page: Page, selector: string, text: string | RegExp) {
  try {
    await page.locator(selector).filter({ hasText: text }).first().waitFor({ timeout: 10_000 });
  } catch {
    const shown = await page.locator(selector).allTextContents();
    const status = await page.locator('#status').textContent();
    throw new Error(`${selector} shows ${JSON.stringify(shown)}, not ${text}; status: ${status}`);
  }
}
