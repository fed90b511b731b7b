import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { Api, RunningService, startService } from '../support/harness';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  host,
  mfaPath,
  operator,
  registerUser,
  superuserOf,
} from '../support/mfa';
import { mailSettled } from '../support/notifications';
import { SmtpSink, summary } from '../support/smtp-sink';

/*
 * DESIGN §5, through the running service and a real SMTP server: the exact
 * set of emails and recipients for a scripted history.
 */

const FIRM = 'firm-mail';
const MAIL_FROM = 'MFA Alerts <alerts@mfa.example>';

async function enablement(api: Api, firmId: string, path: string, body: object): Promise<void> {
  expectOk(await api.put(`/v1/firms/${firmId}/mfa/enablement/${path}`, superuserOf(firmId), body));
}

async function reset(api: Api, firmId: string, userId: string): Promise<void> {
  expectOk(
    await api.post(`${mfaPath(firmId, userId)}/reset`, superuserOf(firmId), {
      reason: 'lost phone',
    }),
  );
}

async function deactivate(api: Api, firmId: string, userId: string): Promise<void> {
  expectOk(
    await api.post(`/v1/firms/${firmId}/users/${userId}/deactivate`, host, {
      reason: 'account-disabled',
    }),
  );
}

const at = (address: string) => `${address}@firm.example`;

describe('Notification emails, sent over SMTP (DESIGN §5)', () => {
  const sink = new SmtpSink();
  let service: RunningService;
  let api: Api;

  beforeAll(async () => {
    await sink.start();
    service = await startService({ env: { SMTP_URL: sink.url, MAIL_FROM } });
    api = service.api;
  });

  afterAll(async () => {
    await service?.stop();
    await sink.stop();
  });

  /** The emails that arrived while `step` ran and the service settled. */
  async function emailsOf(step: () => Promise<void>): Promise<string[]> {
    const before = sink.received.length;
    await step();
    await mailSettled(service);
    return summary(sink.received.slice(before));
  }

  it('follows a scripted history: 80 %, 100 %, a reset re-arms, 100 % again; invitations once per enablement', async () => {
    // Ten licenses; MFA on for case managers (activeFirm) and for every foreign national.
    const registered = await emailsOf(async () => {
      await activeFirm(api, FIRM, 10);
      await enablement(api, FIRM, 'corporations', { mode: 'all', foreignNationals: true });
      // Billing recipients: an active firm admin (any role), an active case manager flagged as billing contact.
      await registerUser(api, FIRM, 'admin-1', { role: 'vendor-case-manager', firmAdmin: true });
      await registerUser(api, FIRM, 'billing-1', { billingContact: true });
      // Not recipients: a billing-flagged vendor case manager, a case manager without the flag,
      // and (once deactivated below) an admin and a billing contact.
      await registerUser(api, FIRM, 'vcm-billing', {
        role: 'vendor-case-manager',
        billingContact: true,
      });
      await registerUser(api, FIRM, 'cm-plain');
      await registerUser(api, FIRM, 'admin-gone', {
        role: 'corp-user',
        corporationId: 'corp-1',
        firmAdmin: true,
      });
      await registerUser(api, FIRM, 'billing-gone', { billingContact: true });
      for (let i = 1; i <= 10; i++) {
        await registerUser(api, FIRM, `fn-${i}`, {
          role: 'foreign-national',
          corporationId: 'corp-1',
        });
      }
    });
    // Case managers are invited when MFA starts applying to them; vendor case managers are
    // not enabled here, corp users and foreign nationals get on-screen instructions instead.
    expect(registered).toEqual(
      ['billing-1', 'billing-gone', 'cm-plain'].map(
        (user) => `enrollment-invitation -> ${at(user)}`,
      ),
    );
    expect(
      await emailsOf(async () => {
        await deactivate(api, FIRM, 'admin-gone');
        await deactivate(api, FIRM, 'billing-gone');
      }),
    ).toEqual([]);

    const recipients = ['admin-1', 'billing-1'].map(at);
    const licenseUsage = (threshold: 80 | 100) =>
      recipients.map((to) => `license-usage-${threshold} -> ${to}`).sort();

    // 7 of 10 seats: below both thresholds.
    expect(
      await emailsOf(async () => {
        for (let i = 1; i <= 7; i++) await enrollTotp(api, FIRM, `fn-${i}`);
      }),
    ).toEqual([]);
    // The 8th seat reaches 80 %.
    expect(await emailsOf(() => enrollTotp(api, FIRM, 'fn-8').then(() => undefined))).toEqual(
      licenseUsage(80),
    );
    const eighty = sink.received.filter((m) => m.notification === 'license-usage-80');
    for (const mail of eighty) {
      expect(mail.subject).toContain(FIRM);
      expect(mail.text).toMatch(/MFA license count: 10\b/);
      expect(mail.text).toMatch(/Seats in use \(enrolled users\): 8\b/);
      expect(mail.text).toMatch(/Unutilized MFA licenses: 2\b/);
      expect(mail.text).toMatch(/Usage: 80%/);
      expect(mail.html).toContain('<td>80%</td>');
      expect(mail.parsed.from?.value).toEqual([
        { name: 'MFA Alerts', address: 'alerts@mfa.example' },
      ]);
    }
    // 9: nothing; 10: 100 %.
    expect(await emailsOf(() => enrollTotp(api, FIRM, 'fn-9').then(() => undefined))).toEqual([]);
    expect(await emailsOf(() => enrollTotp(api, FIRM, 'fn-10').then(() => undefined))).toEqual(
      licenseUsage(100),
    );
    // A reset brings usage to 90 %: 100 % re-arms, 80 % stays reached. Re-enrolling reaches 100 % again.
    expect(await emailsOf(() => reset(api, FIRM, 'fn-10'))).toEqual([]);
    expect(await emailsOf(() => enrollTotp(api, FIRM, 'fn-10').then(() => undefined))).toEqual(
      licenseUsage(100),
    );
    // A deactivation and two resets bring usage to 70 %: both re-arm; back to 100 % sends both again.
    expect(
      await emailsOf(async () => {
        await deactivate(api, FIRM, 'fn-10');
        await reset(api, FIRM, 'fn-9');
        await reset(api, FIRM, 'fn-8');
      }),
    ).toEqual([]);
    expect(
      await emailsOf(async () => {
        for (const user of ['fn-8', 'fn-9']) await enrollTotp(api, FIRM, user);
        await api.post(`/v1/firms/${FIRM}/users/fn-10/reactivate`, host, {});
        await enrollTotp(api, FIRM, 'fn-10');
      }),
    ).toEqual([...licenseUsage(80), ...licenseUsage(100)].sort());
    // More licenses re-arm both; a forced lowering back to usage makes it jump to 100 %: both, at once.
    expect(
      await emailsOf(async () => {
        expectOk(await api.put(`/v1/firms/${FIRM}/mfa/licenses`, operator, { licenseCount: 40 }));
        expectOk(await api.put(`/v1/firms/${FIRM}/mfa/licenses`, operator, { licenseCount: 10 }));
      }),
    ).toEqual([...licenseUsage(80), ...licenseUsage(100)].sort());

    // Invitations: a profile update invites nobody again; an enrolled case manager is not invited
    // when the switch goes off and on; the others are; a reactivated case manager is invited.
    expectOk(await api.put(`/v1/firms/${FIRM}/mfa/licenses`, operator, { licenseCount: 100 }));
    expect(
      await emailsOf(async () => {
        await registerUser(api, FIRM, 'billing-1', { billingContact: true, name: 'Billing One' });
        await enrollTotp(api, FIRM, 'cm-plain');
      }),
    ).toEqual([]);
    expect(
      await emailsOf(async () => {
        // Off and on at once: the off re-arms whatever the policy sees when it gets there.
        await enablement(api, FIRM, 'case-managers', { enabled: false });
        await enablement(api, FIRM, 'case-managers', { enabled: true });
      }),
    ).toEqual(['enrollment-invitation -> billing-1@firm.example']);
    expect(
      await emailsOf(() =>
        api.post(`/v1/firms/${FIRM}/users/billing-gone/reactivate`, host, {}).then(expectOk),
      ),
    ).toEqual(['enrollment-invitation -> billing-gone@firm.example']);
    // Vendor case managers are invited when their switch is turned on; the admin among them too.
    expect(
      await emailsOf(() => enablement(api, FIRM, 'vendor-case-managers', { enabled: true })),
    ).toEqual(
      ['admin-1', 'vcm-billing'].map((user) => `enrollment-invitation -> ${at(user)}`).sort(),
    );

    // A cancellation turns MFA off for everyone (re-arming every invitation); the re-activation
    // turns it on again: every staff user still not enrolled is invited again, nobody else.
    expect(
      await emailsOf(async () => {
        expectOk(await api.post(`/v1/firms/${FIRM}/mfa/subscription/cancel`, operator, {}));
        expectOk(
          await api.post(`/v1/firms/${FIRM}/mfa/subscription/activate`, operator, {
            licenseCount: 100,
            plan: 'standard',
          }),
        );
      }),
    ).toEqual(
      ['admin-1', 'billing-1', 'billing-gone', 'vcm-billing']
        .map((user) => `enrollment-invitation -> ${at(user)}`)
        .sort(),
    );

    // Every message has its own Message-ID, a text and an HTML part, and the routing header.
    const ids = sink.received.map((m) => m.messageId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const mail of sink.received) {
      expect(mail.messageId).toMatch(/^<[0-9a-f-]{36}@mfa\.example>$/);
      expect(mail.text.length).toBeGreaterThan(50);
      expect(mail.html).toContain('<p>');
      expect(mail.subject).toContain(FIRM);
    }
    const invitation = sink.received.find((m) => m.notification === 'enrollment-invitation');
    expect(invitation?.text).toMatch(/What to do next/);

    // Each email is on record: queued with its cause, and sent with the server's answer.
    const events = await service.events();
    const queued = events.filter((e) => e.type === 'EmailQueued');
    const sent = events.filter((e) => e.type === 'EmailSent');
    expect(queued).toHaveLength(sink.received.length);
    expect(new Set(sent.map((e) => e.data.messageId))).toEqual(
      new Set(queued.map((e) => e.data.messageId)),
    );
    expect(sent.every((e) => String(e.data.response).startsWith('250'))).toBe(true);
    const reached = events.filter((e) => e.type === 'LicenseUsageThresholdReached');
    expect(reached.map((e) => e.data.threshold)).toEqual([80, 100, 100, 80, 100, 80, 100]);
    for (const email of queued.filter((e) => e.data.notification !== 'enrollment-invitation')) {
      const cause = email.data.cause as { eventId: string };
      expect(reached.map((e) => e.metadata.eventId)).toContain(cause.eventId);
    }
  }, 120_000);
});

describe('Without SMTP_URL, emails land as .eml files in DATA_DIR/outbox', () => {
  let service: RunningService;

  beforeAll(async () => {
    service = await startService();
  });

  afterAll(() => service?.stop());

  it('writes one parseable message per email, named after its Message-ID', async () => {
    const firm = 'firm-outbox';
    await activeFirm(service.api, firm, 1);
    await registerUser(service.api, firm, 'boss', { firmAdmin: true });
    await enrollTotp(service.api, firm, 'boss');
    await mailSettled(service);
    const outbox = join(service.dataDir, 'outbox');
    const files = readdirSync(outbox).sort();
    expect(files.every((f) => f.endsWith('.eml'))).toBe(true);
    const mails = await Promise.all(files.map((f) => simpleParser(readFileSync(join(outbox, f)))));
    expect(mails.map((m) => String(m.headers.get('x-mfa-notification'))).sort()).toEqual([
      'enrollment-invitation',
      'license-usage-100',
      'license-usage-80',
    ]);
    for (const [i, mail] of mails.entries()) {
      expect(files[i]).toBe(`${mail.messageId?.replace(/[<>]/g, '')}.eml`);
      expect(mail.to && 'text' in mail.to ? mail.to.text : '').toContain('boss@firm.example');
      expect(mail.text).toBeTruthy();
      expect(mail.html).toBeTruthy();
    }
    const full = mails.find((m) => m.headers.get('x-mfa-notification') === 'license-usage-100');
    expect(full?.text).toMatch(
      /MFA license count: 1\b[\s\S]*Seats in use \(enrolled users\): 1\b[\s\S]*Unutilized MFA licenses: 0\b[\s\S]*Usage: 100%/,
    );
    const health = await service.api.get('/health', operator);
    expect(health.body.mail).toMatchObject({ transport: 'outbox', pending: 0, retrying: 0 });
  });
});
