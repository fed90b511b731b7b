import { EVENT_STORE, EventStore } from '../../src/event-store/event-store.port';
import { streams } from '../../src/shared/ids';
import { Api, RunningService, startService, token } from '../support/harness';
import { LogWriter } from '../support/log-events';
import { activeFirm, registerUser } from '../support/mfa';
import { SmtpSink } from '../support/smtp-sink';

/*
 * API.md: `GET /health` (no auth) says liveness and readiness with projection
 * lag, and nothing that names a firm, a user or an address; an `operator`
 * token adds the details. The scenario really produces such details: an SMTP
 * server refuses a recipient (its address is in the error), and a corrupt
 * event stops a projection with a message that echoes the event's data.
 */
const FIRM = 'firm-hq7x';
const USER = 'user-zq9k';
const ADDRESS = 'zq9k-inbox@refused.example';
const POISONED_USER = 'user-pz4m';
const SECRET_BITS = [FIRM, USER, POISONED_USER, ADDRESS, 'refused.example', 'zq9k', 'pz4m'];

const operator = token('operator', { sub: 'ops-7' });

const PUBLIC_KEYS = [
  'eventStore',
  'mail',
  'processManagers',
  'projections',
  'seatRepairs',
  'status',
  'uptimeSeconds',
];
const CONSUMER_KEYS = ['lag', 'name', 'position', 'status'];
/** Counts the engine and the mailer may report; only ever numbers. */
const CONSUMER_COUNTS = ['quarantined', 'skipped'];
const MAIL_COUNTS = ['failed', 'pending', 'retrying'];

describe('GET /health: public liveness, operator details', () => {
  const sink = new SmtpSink({ refuse: (address) => address.endsWith('@refused.example') });
  let service: RunningService;
  let api: Api;

  beforeAll(async () => {
    await sink.start();
    service = await startService({ env: { SMTP_URL: sink.url, MAIL_RETRY_MAX_SECONDS: '1' } });
    api = service.api;
    await activeFirm(api, FIRM, 5);
    // A case manager under MFA: an invitation to an address the server refuses (451).
    await registerUser(api, FIRM, USER, { email: ADDRESS });
    // A confirmation whose factor type echoes an address: the projection's error quotes it.
    const log = new LogWriter(service.app.get<EventStore>(EVENT_STORE));
    await log.append(streams.user(FIRM, POISONED_USER), FIRM, [
      'FactorConfirmed',
      {
        userId: POISONED_USER,
        factorId: 'f-1',
        enrollmentId: 'enr-1',
        factorType: `sms to ${ADDRESS}`,
        label: 'phone',
        generation: 0,
        confirmedAt: '2026-01-15T10:00:00.000Z',
      },
    ]);
    // No event says "a send failed": the operator's /health is where it shows.
    await operatorHealthWhen(
      (body) =>
        body.mail?.lastError?.error?.includes(ADDRESS) &&
        body.projections.some((p: any) => p.name === 'enrolled-users' && p.quarantined === 1),
    );
  }, 60_000);

  afterAll(async () => {
    await service?.stop();
    await sink.stop();
  });

  async function operatorHealthWhen(condition: (body: any) => boolean) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const health = await api.get('/health', operator);
      if (health.status === 200 && condition(health.body)) return health;
      if (Date.now() > deadline) throw new Error(`/health never got there: ${health.text}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  function expectPublic(text: string, body: any): void {
    for (const bit of SECRET_BITS) expect(text).not.toContain(bit);
    expect(Object.keys(body).sort()).toEqual(PUBLIC_KEYS);
    expect(body.status).toBe('degraded');
    expect(body.eventStore).toEqual({ headPosition: expect.stringMatching(/^\d+$/) });
    for (const consumer of [...body.projections, ...body.processManagers]) {
      const keys = Object.keys(consumer);
      expect(keys).toEqual(expect.arrayContaining(CONSUMER_KEYS));
      for (const extra of keys.filter((k) => !CONSUMER_KEYS.includes(k))) {
        expect(CONSUMER_COUNTS).toContain(extra);
        expect(typeof consumer[extra]).toBe('number');
      }
    }
    // The poison event is quarantined: the projection goes on, and says how many it set aside.
    expect(body.projections).toContainEqual({
      name: 'enrolled-users',
      status: 'live',
      position: expect.stringMatching(/^\d+$/),
      lag: expect.stringMatching(/^\d+$/),
      quarantined: 1,
      skipped: 0,
    });
    // Counts, never contents.
    for (const [name, value] of Object.entries(body.mail)) {
      expect(MAIL_COUNTS).toContain(name);
      expect(typeof value).toBe('number');
    }
    expect(body.mail).toMatchObject({ pending: 1, retrying: 1 });
  }

  it('without a token: status, uptime, the head, each consumer and the counts; no firm, user, address or error', async () => {
    const res = await api.get('/health');
    expect(res.status).toBe(200);
    expectPublic(res.text, res.body);
    expect(res.text).not.toMatch(/451|error|failure/i);
  });

  it.each([
    ['host', token('host')],
    ['superuser of the firm', token('superuser', { firm: FIRM, sub: 'admin-1' })],
    ['auditor', token('auditor')],
    ['operator bound to another firm', token('operator', { firm: 'another-firm' })],
  ])('a valid %s token gets the public answer', async (_who, bearer) => {
    const res = await api.get('/health', bearer);
    expect(res.status).toBe(200);
    expectPublic(res.text, res.body);
  });

  it('an operator token adds the details: the failed event, the mail queue and its last error', async () => {
    const res = await api.get('/health', operator);
    expect(res.status).toBe(200);
    expect(res.body.mail).toMatchObject({
      transport: 'smtp',
      pending: 1,
      retrying: 1,
      lastError: { firmId: FIRM, error: expect.stringContaining(ADDRESS) },
    });
    const quarantining = res.body.projections.find((p: any) => p.name === 'enrolled-users');
    expect(quarantining.quarantinedEvents).toEqual([
      expect.objectContaining({
        eventType: 'FactorConfirmed',
        reason: expect.stringContaining(ADDRESS),
      }),
    ]);
  });

  it.each([
    ['a token signed with another secret', token('operator', { secret: 'x'.repeat(48) })],
    ['an expired token', token('operator', { expiresIn: -60 })],
    ['a malformed token', 'not-a-jwt'],
  ])('%s is 401 problem+json, not a quieter answer', async (_what, bearer) => {
    const res = await api.get('/health', bearer);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body.type).toBe('/problems/unauthorized');
    for (const bit of SECRET_BITS) expect(res.text).not.toContain(bit);
  });
});
