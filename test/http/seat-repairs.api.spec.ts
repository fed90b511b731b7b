import { EVENT_STORE, EventStore } from '../../src/event-store/event-store.port';
import { ProjectionEngine } from '../../src/projection-engine/projection-engine';
import { RunningService, startService, token } from '../support/harness';
import { LogWriter } from '../support/log-events';
import { activeFirm, enrollTotp, registerUser } from '../support/mfa';

/*
 * DESIGN §3 S2 and issue 11 item 6: a repair the seat keeper cannot make is
 * recorded as an event and shown in /health, never only logged. History with
 * a factor and no seat can only come from a crash on a store without atomic
 * multi-stream appends, or from before them: the test writes it straight into
 * the log, as such a crash would have left it, in a firm whose seats are all
 * taken.
 */
describe('A seat repair that cannot be made', () => {
  let service: RunningService;
  const FIRM = 'repairs';
  const operator = token('operator', { sub: 'ops-1' });

  beforeAll(async () => (service = await startService()));
  afterAll(() => service.stop());

  /** Once the seat keeper has handled everything up to the head, and the read models too. */
  async function settled(): Promise<void> {
    const engine = service.app.get(ProjectionEngine);
    const store = service.app.get<EventStore>(EVENT_STORE);
    for (;;) {
      const head = await store.headPosition();
      expect(await engine.waitFor(head, ['seat-keeper'], 10_000)).toBe(true);
      // The keeper appends while it handles: settled once its work moved the head no further.
      if ((await store.headPosition()) === head) {
        expect(await engine.waitFor(head, [], 10_000)).toBe(true);
        return;
      }
    }
  }

  const health = async (bearer?: string) =>
    (await service.api.request('GET', '/health', bearer ? { token: bearer } : {})).body as Record<
      string,
      any
    >;

  it('is recorded, counted in public /health, detailed for an operator, and closed once a seat frees up', async () => {
    const { api } = service;
    await activeFirm(api, FIRM, 1);
    await registerUser(api, FIRM, 'holder');
    await enrollTotp(api, FIRM, 'holder');
    await registerUser(api, FIRM, 'orphan');
    const log = new LogWriter(service.app.get<EventStore>(EVENT_STORE));
    await log.confirmFactor(FIRM, 'orphan', 'f-orphan', 'totp');
    await settled();

    const recorded = (await service.events()).filter(
      (event) => event.type === 'SeatRepairFailed' && event.metadata.firmId === FIRM,
    );
    expect(recorded.map((event) => event.data)).toEqual([
      expect.objectContaining({ userId: 'orphan', generation: 0, reason: 'license-exhausted' }),
    ]);
    const open = await health();
    expect(open.status).toBe('degraded');
    expect(open.seatRepairs).toEqual({ failed: 1 });
    expect(JSON.stringify(open)).not.toContain('orphan');
    const detailed = await health(operator);
    expect(detailed.seatRepairs.failures).toEqual([
      expect.objectContaining({ firmId: FIRM, userId: 'orphan', reason: 'license-exhausted' }),
    ]);

    // A second license: the keeper tries the open repair again, gives the seat, and closes it.
    const raised = await api.put(`/v1/firms/${FIRM}/mfa/licenses`, operator, { licenseCount: 2 });
    expect(raised.status).toBe(200);
    await settled();
    const seats = (await service.events()).filter(
      (event) => event.type === 'SeatAssigned' && event.data.userId === 'orphan',
    );
    expect(seats).toHaveLength(1);
    expect((await health()).seatRepairs).toEqual({ failed: 0 });
    expect((await health(operator)).seatRepairs.failures).toEqual([]);
    const usage = await api.get(`/v1/firms/${FIRM}/mfa/usage`, operator);
    expect(usage.body).toMatchObject({ licenseCount: 2, seatsInUse: 2 });
  });
});
