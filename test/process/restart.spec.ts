import { rmSync } from 'node:fs';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Api, readLog, tempDir, token } from '../support/harness';
import { spawnService } from '../support/processes';

/** The log is the truth: whatever was acknowledged is there after a restart, however the process ended. */
describe('restart on the same data folder', () => {
  let dir: string;
  beforeEach(() => (dir = tempDir('mfa-restart-')));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const superuser = token('superuser', { firm: 'acme' });
  const operator = token('operator');
  const host = token('host');

  async function setUpFirm(api: Api) {
    const answers = [
      await api.post('/v1/firms/acme/mfa/subscription/request', superuser, { plan: 'standard' }),
      await api.post('/v1/firms/acme/mfa/subscription/activate', operator, {
        plan: 'standard',
        licenseCount: 12,
      }),
      await api.put('/v1/firms/acme/mfa/enablement/case-managers', superuser, { enabled: true }),
      await api.put('/v1/firms/acme/users/cm-1', host, {
        role: 'case-manager',
        name: 'Ada',
        email: 'ada@firm.example',
      }),
    ];
    for (const answer of answers) expect(answer.status).toBe(200);
    return answers;
  }

  it('after a clean stop, everything is still there and the log continues', async () => {
    const first = await spawnService(dir);
    const api = new Api(first.url);
    await setUpFirm(api);
    const enablement = (await api.get('/v1/firms/acme/mfa/enablement', superuser)).body;
    // Nest closes the stores, then ends the process by re-raising the signal.
    expect([0, 'SIGTERM']).toContain(await first.stop('SIGTERM'));

    const second = await spawnService(dir);
    const again = new Api(second.url);
    expect((await again.get('/v1/firms/acme/mfa/subscription', superuser)).body).toEqual({
      status: 'active',
      plan: 'standard',
      licenseCount: 12,
    });
    expect((await again.get('/v1/firms/acme/mfa/enablement', superuser)).body).toEqual(enablement);
    const next = await again.post('/v1/firms/acme/users/cm-1/deactivate', host, {
      reason: 'deleted',
    });
    expect(next.status).toBe(200);
    await second.stop();

    const log = await readLog(dir);
    // The commands' events, in order; the notification process managers' own records
    // (cm-1's invitation and its re-arm) interleave in the firm's notifications stream.
    expect(commandEvents(log).map((e) => e.type)).toEqual([
      'SubscriptionRequested',
      'SubscriptionActivated',
      'CaseManagersEnablementChanged',
      'UserRegistered',
      'UserDeactivated',
    ]);
    expect(log.map((e) => e.position)).toEqual(log.map((_, i) => BigInt(i + 1)));
  });

  it('after SIGKILL, every acknowledged command is still there', async () => {
    const service = await spawnService(dir);
    const api = new Api(service.url);
    const answers = await setUpFirm(api);
    const burst = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        api.put(`/v1/firms/acme/users/u-${i}`, host, {
          role: 'case-manager',
          name: `User ${i}`,
          email: `u${i}@firm.example`,
        }),
      ),
    );
    for (const answer of burst) expect(answer.status).toBe(200);
    await service.stop('SIGKILL');

    const log = await readLog(dir);
    const positions = new Set(log.map((e) => String(e.position)));
    for (const answer of [...answers, ...burst])
      expect(positions.has(answer.body.position)).toBe(true);
    expect(commandEvents(log)).toHaveLength(24);

    const restarted = await spawnService(dir);
    const users = await new Api(restarted.url).post('/v1/firms/acme/users/u-7/deactivate', host, {
      reason: 'deleted',
    });
    expect(users.status).toBe(200);
    await restarted.stop();
  });
});

/** The events of the commands above, without what process managers appended on their own. */
const commandEvents = (log: RecordedEvent[]) =>
  log.filter((event) => !event.streamId.startsWith('notifications-'));
