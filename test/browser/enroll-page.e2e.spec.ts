import type { Browser } from 'playwright-core';
import { launchChromium, SECURITY_KEY } from '../support/browser';
import { freePort, RunningService, startService, TestClock, token } from '../support/harness';
import { activeFirm, enrollTotp, host, mfaPath, oathtool, registerUser } from '../support/mfa';
import {
  DESKTOP,
  openPage,
  PHONE,
  saveScreenshot,
  seriousAccessibilityViolations,
  signInLink,
  expectText,
  WatchedPage,
} from '../support/pages';

/*
 * Issue 15: the user's enrollment page (/enroll) in Debian's Chromium, signed
 * in with the user's own token from the link's fragment. TOTP codes come from
 * oathtool (independent of the library the service verifies with); security
 * keys from a CDP virtual authenticator (RECIPES: WebAuthn in a real browser).
 */
jest.setTimeout(120_000);

const FIRM = 'acme';

describe('the enrollment page in a real browser', () => {
  let browser: Browser;
  let service: RunningService;
  let origin: string;
  const clock = new TestClock(new Date('2026-04-07T08:30:10.000Z'));
  const watched: WatchedPage[] = [];

  beforeAll(async () => {
    const port = await freePort();
    origin = `http://localhost:${port}`;
    [browser, service] = await Promise.all([
      launchChromium(),
      startService({
        clock,
        port,
        env: { WEBAUTHN_RP_ID: 'localhost', WEBAUTHN_ORIGIN: origin },
      }),
    ]);
    await activeFirm(service.api, FIRM, 3);
  });

  afterAll(async () => {
    await Promise.all(watched.map((w) => w.close()));
    await Promise.all([browser?.close(), service?.stop()]);
  });

  async function enrollPage(userId: string, viewport = DESKTOP): Promise<WatchedPage> {
    const jwt = token('user', { firm: FIRM, sub: userId });
    const opened = await openPage(browser, signInLink(origin, '/enroll', jwt), viewport);
    watched.push(opened);
    await opened.page.locator('#decision').filter({ hasText: /\S/ }).waitFor();
    return opened;
  }

  const decision = async (userId: string) =>
    (await service.api.get(`${mfaPath(FIRM, userId)}/login-requirement`, host)).body.decision;

  it('enrolls an authenticator app with the code oathtool computes', async () => {
    await registerUser(service.api, FIRM, 'ada', { name: 'Ada Lovelace' });
    const watchedPage = await enrollPage('ada');
    const { page } = watchedPage;
    expect(page.url()).toBe(`${origin}/enroll`);
    await expectText(page, '#decision', 'Multi-factor authentication is required for your account');
    expect(await page.locator('#decision-detail').textContent()).toMatch(/scan the QR code/);
    expect(await page.locator('#factor-rows').textContent()).toContain('Nothing enrolled yet.');

    await page.getByLabel('Name of the device (optional)').fill('Work phone');
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    const qr = page.getByRole('img', { name: 'QR code to scan with your authenticator app' });
    await qr.waitFor();
    expect(await qr.getAttribute('src')).toMatch(/^data:image\/svg\+xml;charset=utf-8,/);
    // The QR code image really rendered (an SVG the browser could draw).
    expect(
      await qr.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth),
    ).toBeGreaterThan(0);
    const secret = ((await page.locator('#totp-secret').textContent()) ?? '').replace(/\s/g, '');
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    // The code field has focus: the user types what the app shows.
    expect(await page.evaluate('document.activeElement.id')).toBe('totp-code');
    await page.keyboard.type(oathtool(secret, clock.now()));
    await page.keyboard.press('Enter');
    await expectText(page, '#status', 'Your authenticator app is enrolled.');

    // The next login asks for a code: on the page, and for the host application alike.
    await expectText(
      page,
      '#decision',
      'At each login you confirm it is you with a code from your authenticator app.',
    );
    expect(await decision('ada')).toBe('verify');
    expect(await page.locator('#factor-rows th').allTextContents()).toEqual(['Work phone']);
    expect(await page.locator('#factor-rows td').nth(2).textContent()).toBe('never');

    // Trying a sign-in: a wrong code is refused in words, the next step's code is accepted.
    await page.getByLabel('Code from your authenticator app').fill('000000');
    await page.getByRole('button', { name: 'Verify code' }).click();
    await expectText(page, '#status[data-kind="error"]', /not valid\. 4 attempts left\./);
    clock.advance(30_000);
    await page.getByLabel('Code from your authenticator app').fill(oathtool(secret, clock.now()));
    await page.getByRole('button', { name: 'Verify code' }).click();
    await expectText(page, '#status', 'Verified: your authenticator app works.');
    await expectText(page, '#factor-rows td', 'Apr 7, 2026');
    expect(await page.locator('#factor-rows td').nth(2).textContent()).not.toBe('never');

    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await saveScreenshot(page, 'enroll-desktop');
    expect(watchedPage.complaints).toEqual([
      'Failed to load resource: the server responded with a status of 401 (Unauthorized)',
    ]);
    expect(watchedPage.failures).toEqual([`401 ${mfaPath(FIRM, 'ada')}/totp/verify`]);
  });

  it('registers a security key, then verifies a login with it', async () => {
    await registerUser(service.api, FIRM, 'grace', { name: 'Grace Hopper' });
    const watchedPage = await enrollPage('grace');
    const { page, context } = watchedPage;
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: SECURITY_KEY,
    });

    await page.getByLabel('Name of the key (optional)').fill('YubiKey 5');
    await page.getByRole('button', { name: 'Register security key' }).click();
    await expectText(page, '#status', 'Your security key is registered.');
    await expectText(page, '#decision', 'with your security key');
    expect(await decision('grace')).toBe('verify');
    expect(await page.locator('#factor-rows th').allTextContents()).toEqual(['YubiKey 5']);
    const [credential] = (await cdp.send('WebAuthn.getCredentials', { authenticatorId }))
      .credentials;
    expect(credential.signCount).toBeGreaterThanOrEqual(1);

    await page.getByRole('button', { name: 'Use my security key' }).click();
    await expectText(page, '#status', 'Verified: your security key works.');
    const after = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials[0];
    expect(after.signCount).toBeGreaterThan(credential.signCount);
    expect(await page.locator('#factor-rows td').nth(2).textContent()).not.toBe('never');
    const verified = (await service.events()).filter(
      (e) => e.type === 'WebAuthnVerificationSucceeded' && e.streamId.includes('grace'),
    );
    expect(verified).toHaveLength(1);

    expect(watchedPage.complaints).toEqual([]);
    expect(watchedPage.failures).toEqual([]);
  });

  it('says when licenses are exhausted that the user may continue without MFA for now', async () => {
    // The firm has 3 licenses: ada and grace hold two; one more enrollment takes the last.
    await registerUser(service.api, FIRM, 'alan', { name: 'Alan Turing' });
    await enrollTotp(service.api, FIRM, 'alan', clock.now());
    await registerUser(service.api, FIRM, 'katherine', { name: 'Katherine Johnson' });
    const watchedPage = await enrollPage('katherine', PHONE);
    const { page } = watchedPage;
    await expectText(page, '#decision', 'you may continue without MFA for now');
    expect(
      await page.getByRole('button', { name: 'Set up an authenticator app' }).isVisible(),
    ).toBe(false);
    expect(await page.getByRole('button', { name: 'Register security key' }).isVisible()).toBe(
      false,
    );
    expect(await decision('katherine')).toBe('bypass');
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(
      PHONE.width,
    );
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    expect(watchedPage.complaints).toEqual([]);
    expect(watchedPage.failures).toEqual([]);
  });

  it('shows the enrollment steps at a phone width', async () => {
    await registerUser(service.api, FIRM, 'hedy', {
      name: 'Hedy Lamarr',
      role: 'vendor-case-manager',
    });
    // Vendor case managers are not enabled: MFA is off for this user.
    const off = await enrollPage('hedy', PHONE);
    await expectText(off.page, '#decision', 'not required for your account');
    expect(await off.page.locator('#totp-section').isVisible()).toBe(false);
    // A user who may enroll, mid-way through the TOTP steps (alan's seat freed by a reset first).
    await service.api.post(
      `${mfaPath(FIRM, 'alan')}/reset`,
      token('superuser', { firm: FIRM, sub: 'admin-1' }),
      {
        reason: 'New phone',
      },
    );
    const watchedPage = await enrollPage('alan', PHONE);
    const { page } = watchedPage;
    await expectText(page, '#decision', 'required for your account');
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    await page.locator('#totp-secret').filter({ hasText: /\S/ }).waitFor();
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(
      PHONE.width,
    );
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await saveScreenshot(page, 'enroll-phone');
    for (const w of [off, watchedPage]) {
      expect(w.complaints).toEqual([]);
      expect(w.failures).toEqual([]);
    }
  });
});
