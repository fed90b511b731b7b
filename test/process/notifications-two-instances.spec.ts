import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { Api, tempDir } from '../support/harness';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  mfaPath,
  registerUser,
  superuserOf,
} from '../support/mfa';
import { requireBuild, ServiceProcess, spawnService } from '../support/processes';
import { SmtpSink } from '../support/smtp-sink';

/*
 * Two service processes on one data folder both run the notification policy
 * and the mailer (docs/notifications.md, "Two instances"). Commands go to
 * both, several at a time. Each email is queued once (the notifications
 * stream's expected revision and idempotent queuing), recorded as sent once,
 * and reaches the server at least once; a message both instances sent carries
 * one Message-ID.
 */
const FIRM = 'twin-mail';

describe('two instances send the emails of one firm', () => {
  let dir: string;
  let services: ServiceProcess[] = [];
  const sink = new SmtpSink();

  beforeAll(async () => {
    requireBuild();
    await sink.start();
  });
  beforeEach(() => (dir = tempDir('mfa-mail-twins-')));
  afterEach(async () => {
    await Promise.all(services.map((s) => s.stop('SIGKILL')));
    services = [];
    rmSync(dir, { recursive: true, force: true });
  });
  afterAll(() => sink.stop());

  it('queues each email once, records each send once, and every message arrives', async () => {
    const env = { SMTP_URL: sink.url, MAIL_RETRY_MAX_SECONDS: '1' };
    services = [await spawnService(dir, env), await spawnService(dir, env)];
    const apis = services.map((s) => new Api(s.url));
    await activeFirm(apis[0], FIRM, 12);
    expectOk(
      await apis[1].put(`/v1/firms/${FIRM}/mfa/enablement/corporations`, superuserOf(FIRM), {
        mode: 'all',
        corpUsers: true,
      }),
    );
    await registerUser(apis[0], FIRM, 'boss', {
      role: 'corp-user',
      corporationId: 'c',
      firmAdmin: true,
    });
    await registerUser(apis[1], FIRM, 'billing', { billingContact: true });
    // Twelve corp users fill the twelve licenses, four at a time, on both instances: 80 % at
    // the 10th seat, 100 % at the 12th; then two resets and two enrollments cross again.
    // Six case managers registered meanwhile are invited.
    const users = Array.from({ length: 12 }, (_, i) => `cu-${i}`);
    await Promise.all(
      users.map((u, i) =>
        registerUser(apis[i % 2], FIRM, u, { role: 'corp-user', corporationId: 'c' }),
      ),
    );
    for (let i = 0; i < users.length; i += 4) {
      await Promise.all(
        users
          .slice(i, i + 4)
          .map((u, j) =>
            Promise.all([
              enrollTotp(apis[(i + j) % 2], FIRM, u),
              registerUser(apis[(i + j + 1) % 2], FIRM, `cm-${i + j}`),
            ]),
          ),
      );
    }
    for (const [i, u] of ['cu-0', 'cu-1', 'cu-2'].entries()) {
      expectOk(
        await apis[i % 2].post(`${mfaPath(FIRM, u)}/reset`, superuserOf(FIRM), { reason: 'x' }),
      );
    }
    await Promise.all(['cu-0', 'cu-1', 'cu-2'].map((u, i) => enrollTotp(apis[i % 2], FIRM, u)));

    const log = new SqliteEventStore(join(dir, 'events.sqlite'));
    try {
      await settled(apis, log);
      const events = await log.readAll();
      const reached = events.filter((e) => e.type === 'LicenseUsageThresholdReached');
      expect(reached.map((e) => e.data.threshold)).toEqual([80, 100, 80, 100]);
      const queued = events.filter((e) => e.type === 'EmailQueued');
      const ids = queued.map((e) => String(e.data.messageId));
      expect(new Set(ids).size).toBe(ids.length);
      // Two recipients per crossing; one invitation per case manager (and the billing contact).
      expect(queued.filter((e) => e.data.notification !== 'enrollment-invitation')).toHaveLength(8);
      expect(
        queued
          .filter((e) => e.data.notification === 'enrollment-invitation')
          .map((e) => (e.data.recipient as { userId: string }).userId)
          .sort(),
      ).toEqual(['billing', ...users.map((_, i) => `cm-${i}`)].sort());
      const sent = events
        .filter((e) => e.type === 'EmailSent')
        .map((e) => String(e.data.messageId));
      expect(sent.sort()).toEqual([...ids].sort());
      const arrived = new Map<string, Set<string>>();
      for (const mail of sink.received) {
        arrived.set(
          mail.messageId,
          (arrived.get(mail.messageId) ?? new Set()).add(`${mail.to} ${mail.subject}`),
        );
      }
      expect(new Set(arrived.keys())).toEqual(new Set(ids.map((id) => `<${id}@localhost>`)));
      for (const copies of arrived.values()) expect(copies.size).toBe(1);
    } finally {
      await log.close();
    }
  }, 120_000);
});

/** Both instances have processed the whole log and have nothing left to send (see notifications-crash.spec.ts). */
async function settled(apis: Api[], log: SqliteEventStore): Promise<void> {
  for (let attempt = 0; attempt < 1_000; attempt++) {
    const head = await log.headPosition();
    let quiet = true;
    let pending = false;
    for (const api of apis) {
      expect(
        (await api.get(`/v1/firms/${FIRM}/mfa/usage?minPosition=${head}`, superuserOf(FIRM)))
          .status,
      ).toBe(200);
      const health = (await api.get('/health')).body;
      const managers = health.processManagers as Array<{ position: string }>;
      if (health.mail.pending > 0) pending = true;
      if (pending || managers.some((m) => BigInt(m.position) < head)) quiet = false;
    }
    if (quiet && (await log.headPosition()) === head) return;
    // An email on its way moves the log past the head (its EmailSent): wait for that.
    if (pending) {
      await apis[0].get(`/v1/firms/${FIRM}/mfa/usage?minPosition=${head + 1n}`, superuserOf(FIRM));
    }
  }
  throw new Error('the instances did not settle');
}
