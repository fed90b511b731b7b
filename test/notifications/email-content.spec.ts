import type { ParsedMail } from 'mailparser';
import { Api, RunningService, startService } from '../support/harness';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  operator,
  registerUser,
  superuserOf,
} from '../support/mfa';
import { mailSettled } from '../support/notifications';
import { ReceivedMail, SmtpSink } from '../support/smtp-sink';

/*
 * The words and figures of every notification (DESIGN §5), as a mail client
 * shows them: sent by the running service to a real SMTP server and parsed by
 * mailparser, not by our templates. The figures expected are the usage the
 * script itself produced at the crossing (seats enrolled against licenses
 * bought), so a wrong figure, a wrong threshold in the subject, or a body that
 * contradicts the figures fails here.
 */

interface Figures {
  licenseCount: number;
  seatsInUse: number;
  unutilized: number;
  usagePercent: number;
}

/** Figure labels as the email shows them (the MFA usage page's words). */
const LABELS: Record<keyof Figures, string> = {
  licenseCount: 'MFA license count',
  seatsInUse: 'Seats in use (enrolled users)',
  unutilized: 'Unutilized MFA licenses',
  usagePercent: 'Usage',
};

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** "Label: value" lines of the plain-text part; a figure shown twice or not at all fails. */
function textFigures(text: string): Record<keyof Figures, string> {
  return Object.fromEntries(
    Object.entries(LABELS).map(([key, label]) => {
      const lines = [...text.matchAll(new RegExp(`^${escape(label)}: (.*)$`, 'gm'))];
      expect(lines.map((m) => m[1])).toHaveLength(1);
      return [key, lines[0][1].trim()];
    }),
  ) as Record<keyof Figures, string>;
}

/** The rows of the HTML part's table, tags stripped; each label once. */
function htmlFigures(html: string): Record<keyof Figures, string> {
  const rows = [...html.matchAll(/<tr[^>]*>([\s\S]*?)<\/tr>/g)].map((row) =>
    [...row[1].matchAll(/<t[hd][^>]*>([\s\S]*?)<\/t[hd]>/g)].map((cell) =>
      cell[1].replace(/<[^>]*>/g, '').trim(),
    ),
  );
  return Object.fromEntries(
    Object.entries(LABELS).map(([key, label]) => {
      const matching = rows.filter((cells) => cells[0] === label);
      expect(matching).toHaveLength(1);
      return [key, matching[0][1]];
    }),
  ) as Record<keyof Figures, string>;
}

const shown = (f: Figures) => ({
  licenseCount: String(f.licenseCount),
  seatsInUse: String(f.seatsInUse),
  unutilized: String(f.unutilized),
  usagePercent: `${f.usagePercent}%`,
});

/** The visible words of the HTML part: tags dropped, entities of our escaping decoded. */
const htmlWords = (html: string) =>
  html
    .replace(/<[^>]*>/g, ' ')
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');

const words = (text: string) => text.replace(/\s+/g, ' ');

/** Every percent a text claims, e.g. "80%" or "100 %". */
const percents = (text: string) => [...text.matchAll(/(\d+) ?%/g)].map((m) => Number(m[1]));

/**
 * What a license-usage email must say: its subject names the firm and the
 * threshold crossed, and the seats against the licenses; the text and HTML
 * parts give the same four figures and name the firm; no percent in the
 * words other than the threshold and the actual usage.
 */
function expectUsageEmail(mail: ReceivedMail, firmId: string, threshold: 80 | 100, f: Figures) {
  expect(mail.notification).toBe(`license-usage-${threshold}`);
  expect(mail.subject).toBe(
    `MFA license usage of firm ${firmId} reached ${threshold}%: ` +
      `${f.seatsInUse} of ${f.licenseCount} in use`,
  );
  expect(textFigures(mail.text)).toEqual(shown(f));
  expect(htmlFigures(mail.html)).toEqual(shown(f));
  for (const body of [words(mail.text), htmlWords(mail.html)]) {
    expect(body).toContain(`firm ${firmId}`);
    expect(body).toContain(`reached the ${threshold}% threshold`);
    expect(new Set(percents(body))).toEqual(new Set([threshold, f.usagePercent]));
    // All in use: the not-yet-enrolled cannot enroll now; otherwise they still can.
    if (f.seatsInUse >= f.licenseCount) {
      expect(body).toMatch(/cannot enroll/);
      expect(body).not.toMatch(/When all of them are in use/);
    } else {
      expect(body).toMatch(/When all of them are in use/);
      expect(body).not.toMatch(/cannot enroll/);
    }
  }
}

const named = (mail: ReceivedMail) => (mail.parsed as ParsedMail).to;

describe('Notification emails say what happened, in figures that match the usage (DESIGN §5)', () => {
  const sink = new SmtpSink();
  let service: RunningService;
  let api: Api;

  beforeAll(async () => {
    await sink.start();
    service = await startService({ env: { SMTP_URL: sink.url } });
    api = service.api;
  });

  afterAll(async () => {
    await service?.stop();
    await sink.stop();
  });

  /** The emails that arrived while `step` ran and the service settled, sorted by kind and recipient. */
  async function emailsOf(step: () => Promise<unknown>): Promise<ReceivedMail[]> {
    const before = sink.received.length;
    await step();
    await mailSettled(service);
    return sink.received
      .slice(before)
      .sort((a, b) => `${a.notification} ${a.to}`.localeCompare(`${b.notification} ${b.to}`));
  }

  /**
   * A firm with `licenseCount` licenses, MFA on for case managers and foreign
   * nationals, one firm admin (a vendor case manager: not invited) and
   * `nationals` foreign nationals to enroll.
   */
  async function firm(firmId: string, licenseCount: number, nationals: number): Promise<void> {
    await activeFirm(api, firmId, licenseCount);
    expectOk(
      await api.put(`/v1/firms/${firmId}/mfa/enablement/corporations`, superuserOf(firmId), {
        mode: 'all',
        foreignNationals: true,
      }),
    );
    await registerUser(api, firmId, 'admin', {
      role: 'vendor-case-manager',
      firmAdmin: true,
      name: 'Ada Admin',
    });
    for (let i = 1; i <= nationals; i++) {
      await registerUser(api, firmId, `fn-${i}`, {
        role: 'foreign-national',
        corporationId: 'corp-1',
      });
    }
  }

  const enroll = (firmId: string, from: number, to: number) => async () => {
    for (let i = from; i <= to; i++) await enrollTotp(api, firmId, `fn-${i}`);
  };

  it('invites a case manager by name, naming the firm and the next step, in both parts', async () => {
    const firmId = 'firm-invite';
    await firm(firmId, 10, 0);
    const [mail, ...others] = await emailsOf(() =>
      registerUser(api, firmId, 'cm-1', { name: 'Grace Hopper', email: 'grace@firm.example' }),
    );
    expect(others).toEqual([]);
    expect(mail.notification).toBe('enrollment-invitation');
    expect(mail.to).toBe('grace@firm.example');
    expect(named(mail)).toMatchObject({
      value: [{ name: 'Grace Hopper', address: 'grace@firm.example' }],
    });
    expect(mail.subject).toBe(
      `Multi-factor authentication is now required for your account at firm ${firmId}`,
    );
    for (const body of [words(mail.text), htmlWords(mail.html)]) {
      expect(body).toContain('Hello Grace Hopper,');
      expect(body).toContain(`Your firm (${firmId}) now requires multi-factor authentication`);
      expect(body).toContain('What to do next');
      expect(body).toMatch(/authenticator app/);
      expect(body).toMatch(/security key/);
      expect(percents(body)).toEqual([]);
    }
  });

  it('80 % and then 100 % of ten licenses: each email with the usage at its own crossing', async () => {
    const firmId = 'firm-ten';
    await firm(firmId, 10, 10);
    expect(await emailsOf(enroll(firmId, 1, 7))).toEqual([]);
    const eighty = await emailsOf(enroll(firmId, 8, 8));
    expect(eighty.map((m) => m.to)).toEqual(['admin@firm.example']);
    expectUsageEmail(eighty[0], firmId, 80, {
      licenseCount: 10,
      seatsInUse: 8,
      unutilized: 2,
      usagePercent: 80,
    });
    expect(words(eighty[0].text)).toContain('Hello Ada Admin,');
    expect(await emailsOf(enroll(firmId, 9, 9))).toEqual([]);
    const full = await emailsOf(enroll(firmId, 10, 10));
    expect(full.map((m) => m.notification)).toEqual(['license-usage-100']);
    expectUsageEmail(full[0], firmId, 100, {
      licenseCount: 10,
      seatsInUse: 10,
      unutilized: 0,
      usagePercent: 100,
    });
  });

  it('9 of 11 licenses: the subject names the 80 % threshold, the figures say 81 %', async () => {
    const firmId = 'firm-eleven';
    await firm(firmId, 11, 9);
    expect(await emailsOf(enroll(firmId, 1, 8))).toEqual([]);
    const [mail, ...others] = await emailsOf(enroll(firmId, 9, 9));
    expect(others).toEqual([]);
    expectUsageEmail(mail, firmId, 80, {
      licenseCount: 11,
      seatsInUse: 9,
      unutilized: 2,
      usagePercent: 81,
    });
  });

  it('one license: the first seat crosses 80 % and 100 % at once, and each email names its own threshold', async () => {
    const firmId = 'firm-one';
    await firm(firmId, 1, 1);
    const mails = await emailsOf(enroll(firmId, 1, 1));
    expect(mails.map((m) => m.notification)).toEqual(['license-usage-100', 'license-usage-80']);
    const figures = { licenseCount: 1, seatsInUse: 1, unutilized: 0, usagePercent: 100 };
    expectUsageEmail(mails[1], firmId, 80, figures);
    expectUsageEmail(mails[0], firmId, 100, figures);
  });

  it('a forced lowering below the seats in use: both emails, with more seats in use than licenses', async () => {
    const firmId = 'firm-forced';
    await firm(firmId, 10, 5);
    expect(await emailsOf(enroll(firmId, 1, 5))).toEqual([]);
    const mails = await emailsOf(async () =>
      expectOk(
        await api.put(`/v1/firms/${firmId}/mfa/licenses`, operator, {
          licenseCount: 4,
          force: true,
        }),
      ),
    );
    expect(mails.map((m) => m.notification)).toEqual(['license-usage-100', 'license-usage-80']);
    const figures = { licenseCount: 4, seatsInUse: 5, unutilized: 0, usagePercent: 125 };
    expectUsageEmail(mails[1], firmId, 80, figures);
    expectUsageEmail(mails[0], firmId, 100, figures);
  });
});
