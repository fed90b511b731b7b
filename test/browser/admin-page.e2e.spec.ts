import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/browser';
import { freePort, RunningService, startService, TestClock, token } from '../support/harness';
import { activeFirm, enrollTotp, expectOk, host, registerUser, superuserOf } from '../support/mfa';
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
 * Issue 15: the firm admin's page (/admin) in Debian's Chromium, on the
 * service's public API with a superuser's token from the link's fragment.
 * The test plays the host application (it registers users and enrolls them
 * over the API) and the admin (it uses the page as a person would: by role
 * and label, through the keyboard-reachable controls).
 */
jest.setTimeout(120_000);

const DAY = 24 * 3600 * 1000;
const FIRM = 'acme';
const LICENSES = 30;

/** 26 case managers, sorted by name as the enrolled list sorts them. */
const CASE_MANAGERS = [
  ['ada', 'Ada Lovelace', 'Acme Legal'],
  ['alan', 'Alan Turing', 'Turing & Partners'],
  ['grace', 'Grace Hopper', 'Acme Legal'],
  ['katherine', 'Katherine Johnson', 'Acme Legal'],
  ...Array.from({ length: 22 }, (_, i) => [
    `staff-${String(i + 1).padStart(2, '0')}`,
    `Staff Member ${String(i + 1).padStart(2, '0')}`,
    'Acme Immigration',
  ]),
] as const;

describe('the firm admin page in a real browser', () => {
  let browser: Browser;
  let service: RunningService;
  let origin: string;
  const clock = new TestClock(new Date('2026-03-02T09:00:00.000Z'));
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
    const api = service.api;
    // MFA subscribed and active, but nobody enabled yet: the admin does that on the page.
    await activeFirm(api, FIRM, LICENSES, {});
    for (const [id, name] of [
      ['globex', 'Globex Corporation'],
      ['initech', 'Initech'],
    ]) {
      expectOk(await api.put(`/v1/firms/${FIRM}/corporations/${id}`, host, { name }));
    }
    for (const [userId, name, organization] of CASE_MANAGERS) {
      await registerUser(api, FIRM, userId, { name, organization });
    }
    await registerUser(api, FIRM, 'hank', {
      name: 'Hank Scorpio',
      role: 'corp-user',
      corporationId: 'globex',
      organization: 'Globex Corporation',
    });
    await registerUser(api, FIRM, 'marge', {
      name: 'Marge Simpson',
      role: 'foreign-national',
      corporationId: 'globex',
    });
    await registerUser(api, FIRM, 'peter', {
      name: 'Peter Gibbons',
      role: 'corp-user',
      corporationId: 'initech',
    });
  });

  afterAll(async () => {
    await Promise.all(watched.map((w) => w.close()));
    await Promise.all([browser?.close(), service?.stop()]);
  });

  async function adminPage(viewport = DESKTOP, jwt = superuserOf(FIRM)): Promise<WatchedPage> {
    const opened = await openPage(browser, signInLink(origin, '/admin', jwt), viewport);
    watched.push(opened);
    await opened.page.waitForSelector('#counter-rows tr');
    return opened;
  }

  const counter = (page: Page, role: string, column: 'enabled' | 'enrolled') =>
    page.locator(`#counter-rows tr[data-role="${role}"] td`).nth(column === 'enabled' ? 0 : 1);

  /**
   * What sticks out to the right of a phone's screen (tables scroll inside
   * their own region and do not count), and the page's own width if wider.
   */
  const overflowing = async (page: Page) => {
    const wide = (await page.evaluate(`[...document.querySelectorAll('body *')]
      .filter((e) => e.getBoundingClientRect().right > ${PHONE.width} + 0.5 && !e.closest('.table-wrap table'))
      .map((e) => e.tagName + (e.id ? '#' + e.id : ''))`)) as string[];
    const width = (await page.evaluate('document.documentElement.scrollWidth')) as number;
    return width > PHONE.width ? [...wide, `page ${width}px`] : wide;
  };

  /** Waits until the enrolled list shows `count` users. */
  const rows = async (page: Page, count: number) => {
    try {
      await page.waitForFunction(
        (n) => (globalThis as any).document.querySelectorAll('#enrolled-rows th').length === n,
        count,
        { timeout: 10_000 },
      );
    } catch {
      const shown = await page.locator('#enrolled-rows tr').allTextContents();
      const status = await page.locator('#status').textContent();
      throw new Error(
        `the list shows ${JSON.stringify(shown)}, not ${count} users; status: ${status}`,
      );
    }
  };

  it('enables MFA, follows usage over time, searches, pages and resets enrollments', async () => {
    const admin = await adminPage();
    const { page } = admin;

    // The token left the address bar at once: not bookmarked, not in the history.
    expect(page.url()).toBe(`${origin}/admin`);
    expect(await page.locator('#subscription-status').textContent()).toBe('Active');
    expect(await page.locator('#subscription-licenses').textContent()).toBe(String(LICENSES));
    expect(await counter(page, 'caseManagers', 'enabled').textContent()).toBe('0');

    // Configuration: all case managers, then one specific corporation.
    await page.getByRole('switch', { name: 'Enable for all case managers' }).check();
    await expectText(page, '#status', 'MFA is enabled for all case managers.');
    expect(await counter(page, 'caseManagers', 'enabled').textContent()).toBe(
      String(CASE_MANAGERS.length),
    );
    await page.getByRole('radio', { name: /Specific corporations/ }).check();
    await expectText(page, '#status', 'specific corporations');
    await page.getByLabel('Find a corporation').fill('glob');
    await page.getByLabel('Find a corporation').press('Enter');
    await page.getByRole('button', { name: 'Add Globex Corporation' }).click();
    await expectText(page, '#specific-rows th', 'Globex Corporation');
    // The search result follows the list: it cannot be added twice (nor undo a switch).
    expect(await page.getByRole('button', { name: 'Added Globex Corporation' }).isDisabled()).toBe(
      true,
    );
    expect(await counter(page, 'corpUsers', 'enabled').textContent()).toBe('1');
    expect(await counter(page, 'foreignNationals', 'enabled').textContent()).toBe('1');
    // Foreign nationals of Globex off again, from the keyboard: the row is drawn anew,
    // and focus stays on its switch.
    await page.getByRole('switch', { name: 'Foreign nationals of Globex Corporation' }).focus();
    await page.keyboard.press('Space');
    await expectText(page, '#status', 'disabled for the foreign nationals of Globex Corporation');
    expect(await page.evaluate('document.activeElement.id')).toBe('corp-globex-foreignNationals');
    expect(
      await page
        .getByRole('switch', { name: 'Foreign nationals of Globex Corporation' })
        .isChecked(),
    ).toBe(false);
    expect(await counter(page, 'foreignNationals', 'enabled').textContent()).toBe('0');
    const enablement = await service.api.get(`/v1/firms/${FIRM}/mfa/enablement`, superuserOf(FIRM));
    expect(enablement.body).toMatchObject({
      caseManagers: true,
      corporations: {
        mode: 'specific',
        specific: [{ corporationId: 'globex', corpUsers: true, foreignNationals: false }],
      },
    });

    // A switch worked from the keyboard keeps the focus (disabled while its command runs).
    const vendors = page.getByRole('switch', { name: 'Enable for all vendor case managers' });
    await vendors.focus();
    await page.keyboard.press('Space');
    await expectText(page, '#status', 'MFA is enabled for all vendor case managers.');
    expect(await page.evaluate('document.activeElement.id')).toBe('enable-vendor-case-managers');
    await page.keyboard.press('Space');
    await expectText(page, '#status', 'MFA is disabled for all vendor case managers.');
    expect(await vendors.isChecked()).toBe(false);

    // The same page at a phone's width: the corporations table scrolls in its own region.
    const phone = await adminPage(PHONE);
    await expectText(phone.page, '#specific-rows th', 'Globex Corporation');
    expect(await overflowing(phone.page)).toEqual([]);
    expect(await seriousAccessibilityViolations(phone.page)).toEqual([]);
    await saveScreenshot(phone.page, 'admin-phone');
    expect(phone.complaints).toEqual([]);
    expect(phone.failures).toEqual([]);

    // Users enroll over the following days (the host application, on their behalf).
    const crossing = Math.ceil(0.8 * LICENSES);
    let crossedAt = 0;
    for (const [index, [userId]] of CASE_MANAGERS.entries()) {
      clock.advance(DAY);
      await enrollTotp(service.api, FIRM, userId, clock.now());
      if (index + 1 === crossing) crossedAt = clock.now().getTime();
    }
    clock.advance(DAY);
    await enrollTotp(service.api, FIRM, 'hank', clock.now());
    const seats = CASE_MANAGERS.length + 1;

    await page.getByRole('button', { name: 'Refresh' }).click();
    await expectText(page, '#status', 'Up to date.');
    expect(await page.locator('#usage-seats').textContent()).toBe(String(seats));
    expect(await page.locator('#usage-unutilized').textContent()).toBe(String(LICENSES - seats));
    const percent = Math.floor((100 * seats) / LICENSES);
    expect(await page.locator('#usage-percent').textContent()).toBe(`${percent} %`);
    expect(await page.locator('#usage-gauge').getAttribute('value')).toBe(String(percent));
    expect(await counter(page, 'caseManagers', 'enrolled').textContent()).toBe(
      String(CASE_MANAGERS.length),
    );
    expect(await counter(page, 'corpUsers', 'enrolled').textContent()).toBe('1');

    // The chart: seats in use cross the 80 % line on the day the 24th user enrolled.
    const chart = (await page.evaluate(`(() => {
      const chart = Chart.getChart(document.getElementById('usage-chart'));
      return chart.data.datasets.map((d) => ({ label: d.label, points: d.data }));
    })()`)) as Array<{ label: string; points: Array<{ x: number; y: number }> }>;
    const [inUse, licenses, eighty] = chart;
    expect(inUse.label).toBe('Seats in use');
    expect(licenses.points.every((p) => p.y === LICENSES)).toBe(true);
    expect(eighty.points.every((p) => p.y === 0.8 * LICENSES)).toBe(true);
    const firstAbove = inUse.points.find((p) => p.y >= 0.8 * LICENSES);
    expect(firstAbove?.y).toBe(crossing);
    expect(inUse.points.filter((p) => p.y < 0.8 * LICENSES).length).toBeGreaterThan(0);
    // When the 24th user enrolled, and not before.
    expect(firstAbove?.x).toBe(crossedAt);
    await expectText(
      page,
      '#usage-crossings li',
      /Usage reached 80 % of the licenses on .* \(24 of 30 seats\)/,
    );
    await expectText(page, '#usage-warning', `${percent} % of your MFA licenses are in use.`);

    // Enrolled users: sorted by name, 20 a page.
    const names = () => page.locator('#enrolled-rows th').allTextContents();
    expect((await names()).slice(0, 3)).toEqual(['Ada Lovelace', 'Alan Turing', 'Grace Hopper']);
    expect(await names()).toHaveLength(20);
    await page.getByRole('button', { name: 'Next page' }).click();
    await expectText(page, '#enrolled-page', 'Page 2');
    expect(await names()).toHaveLength(seats - 20);
    expect(await page.getByRole('button', { name: 'Next page' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await expectText(page, '#enrolled-page', 'Page 1');
    expect(await names()).toHaveLength(20);

    // Search by name, by organization, and by role.
    await page.getByLabel('Search by name or organization').fill('TURING');
    await page.getByLabel('Search by name or organization').press('Enter');
    await expectText(page, '#enrolled-page', 'Page 1');
    await rows(page, 1);
    expect(await names()).toEqual(['Alan Turing']);
    await page.getByLabel('Search by name or organization').fill('acme legal');
    await page.getByRole('button', { name: 'Search', exact: true }).last().click();
    await rows(page, 3);
    expect(await names()).toEqual(['Ada Lovelace', 'Grace Hopper', 'Katherine Johnson']);
    await page.getByLabel('Search by name or organization').fill('');
    await page.getByLabel('Role').selectOption('corp-user');
    await rows(page, 1);
    expect(await names()).toEqual(['Hank Scorpio']);
    await page.getByLabel('Role').selectOption('');
    await rows(page, 20);

    // Reset an enrollment: the dialog asks for the reason; usage drops at once.
    await page.getByRole('button', { name: 'Reset MFA enrollment of Ada Lovelace' }).click();
    const dialog = page.getByRole('dialog', { name: 'Reset MFA enrollment' });
    await dialog.waitFor();
    await dialog.getByLabel('Reason').fill('Lost phone');
    await dialog.getByRole('button', { name: 'Reset MFA enrollment' }).click();
    await expectText(page, '#status', 'The MFA enrollment of Ada Lovelace was reset.');
    expect(await dialog.isVisible()).toBe(false);
    // The page read back at its own action's position: no stale figure.
    expect(await page.locator('#usage-seats').textContent()).toBe(String(seats - 1));
    expect(await counter(page, 'caseManagers', 'enrolled').textContent()).toBe(
      String(CASE_MANAGERS.length - 1),
    );
    expect(await names()).not.toContain('Ada Lovelace');
    const usage = await service.api.get(`/v1/firms/${FIRM}/mfa/usage`, superuserOf(FIRM));
    expect(usage.body.seatsInUse).toBe(seats - 1);
    const events = await service.events();
    expect(events.filter((e) => e.type === 'EnrollmentReset')).toHaveLength(1);

    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await saveScreenshot(page, 'admin-desktop');
    expect(admin.complaints).toEqual([]);
    expect(admin.failures).toEqual([]);
  });

  it('shows a refusal of the API in words, and the page at a phone width', async () => {
    const firm = 'gamma';
    await activeFirm(service.api, firm, 2);
    for (const userId of ['olga', 'oscar']) {
      await registerUser(service.api, firm, userId);
      await enrollTotp(service.api, firm, userId, clock.now());
    }
    const admin = await adminPage(PHONE, token('operator', { firm, sub: 'ops-1' }));
    const { page } = admin;
    // An operator may not lower the license count below the seats in use without forcing it.
    await page.getByLabel('Change the license count to').fill('1');
    await page.getByRole('button', { name: 'Change license count' }).click();
    await expectText(page, '#status[data-kind="error"]', /below|in use/i);
    const shown = (await page.locator('#status').textContent()) ?? '';
    expect(shown).not.toMatch(/[{}"]/);
    expect(await page.locator('#subscription-licenses').textContent()).toBe('2');
    // The operator sees usage and the enrolled list, but neither configuration nor reset.
    expect(await page.locator('#configuration').isVisible()).toBe(false);
    expect(await page.getByRole('button', { name: /^Reset MFA enrollment/ }).count()).toBe(0);

    expect(await overflowing(page)).toEqual([]);
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await saveScreenshot(page, 'admin-phone-operator');
    // The one refusal the test provoked (Chromium notes it on the console), and nothing else.
    expect(admin.complaints).toEqual([
      'Failed to load resource: the server responded with a status of 409 (Conflict)',
    ]);
    expect(admin.failures).toEqual([`409 /v1/firms/${firm}/mfa/licenses`]);
  });

  it('walks a new firm from "Subscribe" to "requested, waiting for activation" to active', async () => {
    const firm = 'beta';
    const admin = await adminPage(DESKTOP, superuserOf(firm));
    const { page } = admin;
    expect(await page.locator('#subscription-status').textContent()).toBe('Not subscribed');
    // No change yet: no chart, and words instead.
    expect(await page.locator('#usage-chart-figure').isVisible()).toBe(false);
    await expectText(page, '#usage-crossings li', 'No license usage yet.');
    const caseManagers = page.getByRole('switch', { name: 'Enable for all case managers' });
    expect(await caseManagers.isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Subscribe' }).click();
    await expectText(page, '#subscription-status', 'Requested, waiting for activation');
    expect(await page.getByRole('button', { name: 'Subscribe' }).isVisible()).toBe(false);

    const ops = await adminPage(DESKTOP, token('operator', { firm, sub: 'ops-1' }));
    await ops.page.getByLabel('MFA licenses').fill('10');
    await ops.page.getByRole('button', { name: 'Activate' }).click();
    await expectText(ops.page, '#subscription-status', 'Active');

    await page.getByRole('button', { name: 'Refresh' }).click();
    await expectText(page, '#subscription-status', 'Active');
    expect(await caseManagers.isDisabled()).toBe(false);
    expect(await page.locator('#usage-licenses').textContent()).toBe('10');
    // One change (the activation): a chart with the license line over at least an hour.
    expect(await page.locator('#usage-chart-figure').isVisible()).toBe(true);
    const axis = (await page.evaluate(`(() => {
      const x = Chart.getChart(document.getElementById('usage-chart')).scales.x;
      return { min: x.min, max: x.max };
    })()`)) as { min: number; max: number };
    expect(axis.max - axis.min).toBeGreaterThanOrEqual(3600 * 1000);
    for (const w of [admin, ops]) {
      expect(w.complaints).toEqual([]);
      expect(w.failures).toEqual([]);
    }
  });

  it('asks for a sign-in link, and keeps other roles out', async () => {
    const bare = await openPage(browser, `${origin}/admin`);
    watched.push(bare);
    await expectText(bare.page, '#signin-problem-text', 'Open this page from the application');
    expect(await bare.page.locator('#content').isVisible()).toBe(false);

    const user = await openPage(
      browser,
      signInLink(origin, '/admin', token('user', { firm: FIRM, sub: 'ada' })),
    );
    watched.push(user);
    await expectText(user.page, '#signin-problem-text', "for your firm's administrators");
    // A token the service refuses (here: its signature altered) replaces the page with words.
    const jwt = superuserOf(FIRM);
    const altered = `${jwt.slice(0, -3)}${jwt.endsWith('AAA') ? 'BBB' : 'AAA'}`;
    const refused = await openPage(browser, signInLink(origin, '/admin', altered));
    watched.push(refused);
    await expectText(
      refused.page,
      '#signin-problem-text',
      'Your sign-in has expired or is not valid',
    );
    expect(await refused.page.locator('#content').isVisible()).toBe(false);
    expect(refused.failures.length).toBeGreaterThan(0);
    expect(refused.failures.every((line) => line.startsWith('401 '))).toBe(true);

    // Sign out forgets the token: the page asks for a link again.
    const signedIn = await adminPage();
    await signedIn.page.getByRole('button', { name: 'Sign out' }).click();
    await expectText(signedIn.page, '#signin-problem-text', 'You signed out.');
    expect(await signedIn.page.locator('#content').isVisible()).toBe(false);

    for (const w of [bare, user]) {
      expect(w.complaints).toEqual([]);
      expect(w.failures).toEqual([]);
    }
    // A superuser of another firm reaches nothing of this one: the API refuses.
    const other = await service.api.get(`/v1/firms/${FIRM}/mfa/usage`, superuserOf('beta'));
    expect(other.status).toBe(403);
  });
});
