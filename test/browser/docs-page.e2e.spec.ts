import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/browser';
import { RunningService, startService } from '../support/harness';

/*
 * The /docs page under its strict Content-Security-Policy, in a real browser:
 * Swagger UI renders the service's OpenAPI description with no script or
 * style that the policy blocks, and refuses to be framed.
 */
describe('the API docs page in a real browser', () => {
  let browser: Browser;
  let service: RunningService;

  beforeAll(async () => {
    [browser, service] = await Promise.all([launchChromium(), startService()]);
  });
  afterAll(async () => {
    await Promise.all([browser?.close(), service?.stop()]);
  });

  it.each(['/docs', '/docs/'])(
    'renders every operation at %s, and the policy blocks nothing',
    async (path) => {
      const page = await browser.newPage();
      const complaints: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error' || /Content.Security.Policy/i.test(message.text())) {
          complaints.push(message.text());
        }
      });
      page.on('pageerror', (error) => complaints.push(error.message));
      const failed: string[] = [];
      page.on('response', (response) => {
        if (response.status() >= 400)
          failed.push(`${response.status()} ${new URL(response.url()).pathname}`);
      });
      try {
        await page.goto(`${service.api.baseUrl}${path}`);
        await page.waitForSelector('.swagger-ui .info .title', { timeout: 15_000 });
        expect(await page.textContent('.swagger-ui .info .title')).toContain('MFA Service');
        const description = (await service.api.get('/openapi.json')).body as {
          paths: Record<string, Record<string, unknown>>;
        };
        const operations = Object.values(description.paths).reduce(
          (sum, item) => sum + Object.keys(item).length,
          0,
        );
        // Evaluated in the page (strings: this project compiles without the DOM library).
        await page.waitForFunction(
          `document.querySelectorAll('.opblock').length >= ${operations}`,
          undefined,
          { timeout: 15_000 },
        );
        // Swagger UI's icons (data: images in its stylesheet) and styles applied.
        const border = await page.evaluate(
          "getComputedStyle(document.querySelector('.swagger-ui .opblock')).borderStyle",
        );
        expect(border).toBe('solid');
        // The browser asks for /favicon.ico, which is not served: its 404 is the only failure.
        expect(failed.filter((line) => line !== '404 /favicon.ico')).toEqual([]);
        expect(complaints.filter((text) => !/status of 404/.test(text))).toEqual([]);
      } finally {
        await page.close();
      }
    },
  );

  it('is not shown inside a frame of another page', async () => {
    const page = await browser.newPage();
    try {
      // Chromium reports the refusal on the console of the framing page.
      const refused = page.waitForEvent('console', {
        predicate: (message) => /frame-ancestors/.test(message.text()),
        timeout: 15_000,
      });
      await page.setContent(`<iframe src="${service.api.baseUrl}/docs"></iframe>`);
      expect((await refused).text()).toMatch(/frame-ancestors 'none'/);
      const framed = page.frames().filter((frame) => frame !== page.mainFrame());
      for (const frame of framed) expect(await frame.$('.swagger-ui')).toBeNull();
    } finally {
      await page.close();
    }
  });
});
