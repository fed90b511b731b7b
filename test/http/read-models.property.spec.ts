import fc from 'fast-check';
import { UserRole } from '../../src/directory/user.decider';
import {
  EnablementEvent,
  enablementDecider,
  EnablementState,
  switchCovers,
} from '../../src/enablement/enablement.decider';
import { EVENT_STORE, EventStore, RecordedEvent } from '../../src/event-store/event-store.port';
import { ProjectionEngine } from '../../src/projection-engine/projection-engine';
import { Api, RunningService, startService, token } from '../support/harness';
import { LogWriter } from '../support/log-events';

/*
 * For random histories of commands (over HTTP) and enrollments (appended to
 * the log as the enrollment slice writes them), the dashboards equal a brute
 * force recount of the firm's whole log, and the enrolled list pages through
 * exactly the expected users in the expected order, whatever the filters.
 */

const ROLES: UserRole[] = ['case-manager', 'vendor-case-manager', 'corp-user', 'foreign-national'];
const NAMES = ['Ann', 'ann', 'Élodie', 'Bob', 'Zoë', 'bo', 'Al'];
const ORGS = [null, 'Acme', 'Initech', 'élan'];
const CORPS = ['c1', 'c2', 'c3'];
const SEARCHES = ['', 'a', 'AN', 'él', 'o', 'acme', 'zz'];

type Step =
  | { kind: 'register'; user: number; role: number; corp: number; name: number; org: number }
  | { kind: 'deactivate' | 'reactivate'; user: number }
  | { kind: 'request' | 'cancel' }
  | { kind: 'activate' | 'licenses'; count: number }
  | { kind: 'caseManagers' | 'vendors'; enabled: boolean }
  | { kind: 'mode'; specific: boolean; corpUsers: boolean; foreignNationals: boolean }
  | { kind: 'specific'; corp: number; corpUsers: boolean; foreignNationals: boolean }
  | { kind: 'unlist'; corp: number }
  | { kind: 'confirm'; user: number; webauthn: boolean }
  | { kind: 'reset'; user: number };

const user = fc.integer({ min: 0, max: 7 });
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('register' as const),
      user,
      role: fc.nat(3),
      corp: fc.nat(2),
      name: fc.nat(6),
      org: fc.nat(3),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constantFrom('deactivate' as const, 'reactivate' as const),
      user,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constantFrom('request' as const, 'cancel' as const) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constantFrom('activate' as const, 'licenses' as const),
      count: fc.integer({ min: 1, max: 6 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constantFrom('caseManagers' as const, 'vendors' as const),
      enabled: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('mode' as const),
      specific: fc.boolean(),
      corpUsers: fc.boolean(),
      foreignNationals: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('specific' as const),
      corp: fc.nat(2),
      corpUsers: fc.boolean(),
      foreignNationals: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unlist' as const), corp: fc.nat(2) }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('confirm' as const), user, webauthn: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('reset' as const), user }) },
);

interface BruteUser {
  role: UserRole;
  corporationId: string | null;
  name: string;
  organization: string | null;
  email: string;
  active: boolean;
  factors: Array<{ id: string; type: string; at: string }>;
}

/** Everything recounted from the firm's events, the slow and obvious way. */
function recount(firmId: string, events: RecordedEvent[]) {
  const users = new Map<string, BruteUser>();
  let enablement: EnablementState = enablementDecider.initialState();
  let status = 'none';
  let licenseCount = 0;
  const seats = new Set<string>();
  for (const event of events.filter((e) => e.metadata.firmId === firmId)) {
    const data = event.data as any;
    switch (event.type) {
      case 'UserRegistered':
      case 'UserProfileUpdated': {
        const before = users.get(data.userId);
        users.set(data.userId, {
          role: data.role,
          corporationId: data.corporationId ?? null,
          name: data.name,
          organization: data.organization ?? null,
          email: data.email,
          active: before?.active ?? true,
          factors: before?.factors ?? [],
        });
        break;
      }
      case 'UserDeactivated':
        users.get(data.userId)!.active = false;
        break;
      case 'UserReactivated':
        users.get(data.userId)!.active = true;
        break;
      case 'FactorConfirmed': {
        const u = users.get(data.userId);
        if (u && !u.factors.some((f) => f.id === data.factorId)) {
          u.factors.push({ id: data.factorId, type: data.factorType, at: data.confirmedAt });
        }
        break;
      }
      case 'EnrollmentReset':
        if (users.get(data.userId)) users.get(data.userId)!.factors = [];
        break;
      case 'SubscriptionRequested':
        status = 'requested';
        break;
      case 'SubscriptionActivated':
      case 'LicenseCountChanged':
        status = 'active';
        licenseCount = data.licenseCount;
        break;
      case 'SubscriptionCancelled':
        status = 'cancelled';
        break;
      case 'SeatAssigned':
        seats.add(data.userId);
        break;
      case 'SeatReleased':
        seats.delete(data.userId);
        break;
      default:
        if (event.streamId.startsWith('enablement-')) {
          enablement = enablementDecider.evolve(enablement, event as unknown as EnablementEvent);
        }
    }
  }
  const keyOf: Record<UserRole, string> = {
    'case-manager': 'caseManagers',
    'vendor-case-manager': 'vendorCaseManagers',
    'corp-user': 'corpUsers',
    'foreign-national': 'foreignNationals',
  };
  const zero = () => ({
    caseManagers: 0,
    vendorCaseManagers: 0,
    corpUsers: 0,
    foreignNationals: 0,
  });
  const counters = { enabled: zero() as any, enrolled: zero() as any };
  const enrolled: any[] = [];
  for (const [userId, u] of users) {
    const enforced = status === 'active' && u.active && switchCovers(enablement, u);
    if (enforced) counters.enabled[keyOf[u.role]]++;
    if (u.factors.length > 0) {
      counters.enrolled[keyOf[u.role]]++;
      enrolled.push({
        userId,
        name: u.name,
        email: u.email,
        organization: u.organization,
        role: u.role,
        corporationId: u.corporationId,
        factors: ['totp', 'webauthn'].filter((t) => u.factors.some((f) => f.type === t)),
        enrolledAt: u.factors[0].at,
        enforced,
      });
    }
  }
  enrolled.sort((a, b) => {
    const [x, y] = [a.name.toLowerCase(), b.name.toLowerCase()];
    return x < y ? -1 : x > y ? 1 : a.userId < b.userId ? -1 : 1;
  });
  const usage = {
    status,
    licenseCount,
    seatsInUse: seats.size,
    unutilized: Math.max(licenseCount - seats.size, 0),
    usagePercent: licenseCount > 0 ? Math.floor((100 * seats.size) / licenseCount) : 0,
  };
  return { counters, usage, enrolled };
}

describe('Read models against a brute-force recount of random histories', () => {
  let service: RunningService;
  let api: Api;
  let log: LogWriter;
  let store: EventStore;
  let run = 0;
  const host = token('host');
  const operator = token('operator');

  beforeAll(async () => {
    service = await startService();
    api = service.api;
    store = service.app.get<EventStore>(EVENT_STORE);
    log = new LogWriter(store);
  });
  afterAll(() => service.stop());

  /** The log's head once process managers (the seat keeper) have nothing left to add. */
  async function quiet(): Promise<bigint> {
    const engine = service.app.get(ProjectionEngine);
    const managers = engine.health(0n).processManagers.map((m) => m.name);
    for (;;) {
      const head = await store.headPosition();
      expect(await engine.waitFor(head, managers, 5000)).toBe(true);
      if ((await store.headPosition()) === head) return head;
    }
  }

  async function play(firmId: string, steps: Step[]) {
    const superuser = token('superuser', { firm: firmId });
    const base = `/v1/firms/${firmId}`;
    let factor = 0;
    for (const s of steps) {
      const userId = 'user' in s ? `u${s.user}` : '';
      switch (s.kind) {
        case 'register': {
          const role = ROLES[s.role];
          const corporate = role === 'corp-user' || role === 'foreign-national';
          await api.put(`${base}/users/${userId}`, host, {
            role,
            ...(corporate ? { corporationId: CORPS[s.corp] } : {}),
            name: NAMES[s.name],
            email: `${userId}@example.com`,
            organization: ORGS[s.org],
          });
          break;
        }
        case 'deactivate':
          await api.post(`${base}/users/${userId}/deactivate`, host, { reason: 'deleted' });
          break;
        case 'reactivate':
          await api.post(`${base}/users/${userId}/reactivate`, host, {});
          break;
        case 'request':
          await api.post(`${base}/mfa/subscription/request`, superuser, {});
          break;
        case 'cancel':
          await api.post(`${base}/mfa/subscription/cancel`, operator, {});
          break;
        case 'activate':
          await api.post(`${base}/mfa/subscription/activate`, operator, {
            licenseCount: s.count,
            plan: 'standard',
          });
          break;
        case 'licenses':
          await api.put(`${base}/mfa/licenses`, operator, { licenseCount: s.count, force: true });
          break;
        case 'caseManagers':
        case 'vendors':
          await api.put(
            `${base}/mfa/enablement/${s.kind === 'vendors' ? 'vendor-case-managers' : 'case-managers'}`,
            superuser,
            { enabled: s.enabled },
          );
          break;
        case 'mode':
          await api.put(`${base}/mfa/enablement/corporations`, superuser, {
            mode: s.specific ? 'specific' : 'all',
            corpUsers: s.corpUsers,
            foreignNationals: s.foreignNationals,
          });
          break;
        case 'specific':
          await api.put(`${base}/mfa/enablement/corporations/${CORPS[s.corp]}`, superuser, {
            corpUsers: s.corpUsers,
            foreignNationals: s.foreignNationals,
          });
          break;
        case 'unlist':
          await api.delete(`${base}/mfa/enablement/corporations/${CORPS[s.corp]}`, superuser);
          break;
        case 'confirm': {
          // Enrollment only happens to registered, active users (the enrollment slice refuses others).
          const stream = await store.readStream(`user-${firmId}/${userId}`);
          const status = stream
            .map((e) => e.type)
            .filter((t) => ['UserRegistered', 'UserDeactivated', 'UserReactivated'].includes(t))
            .pop();
          if (status !== 'UserRegistered' && status !== 'UserReactivated') break;
          factor++;
          const at = new Date(Date.UTC(2026, 0, 1, 0, factor)).toISOString();
          await log.confirmFactor(
            firmId,
            userId,
            `f${factor}`,
            s.webauthn ? 'webauthn' : 'totp',
            at,
          );
          await log.assignSeat(firmId, userId);
          break;
        }
        case 'reset':
          await log.resetEnrollment(firmId, userId, []);
          await log.releaseSeat(firmId, userId);
          break;
      }
    }
  }

  it('counters, usage and the enrolled list, page after page', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 5, maxLength: 40 }),
        fc.constantFrom(...SEARCHES),
        fc.option(fc.constantFrom(...ROLES), { nil: undefined }),
        fc.integer({ min: 1, max: 4 }),
        async (steps, search, role, limit) => {
          const firmId = `firm${++run}`;
          await play(firmId, steps);
          const head = String(await quiet());
          const expected = recount(firmId, await store.readAll({ after: 0n, maxCount: 1_000_000 }));
          const at = `minPosition=${head}`;
          const reader = token('superuser', { firm: firmId });
          const counters = await api.get(`/v1/firms/${firmId}/mfa/counters?${at}`, reader);
          expect(counters.body).toEqual(expected.counters);
          const usage = await api.get(`/v1/firms/${firmId}/mfa/usage?${at}`, reader);
          expect(usage.body).toEqual(expected.usage);

          const wanted = expected.enrolled.filter(
            (u) =>
              (role === undefined || u.role === role) &&
              (search === '' ||
                u.name.toLowerCase().includes(search.toLowerCase()) ||
                (u.organization ?? '').toLowerCase().includes(search.toLowerCase())),
          );
          const seen: any[] = [];
          let cursor: string | null = null;
          let pages = 0;
          do {
            const params = new URLSearchParams({ limit: String(limit), minPosition: head });
            if (search) params.set('search', search);
            if (role) params.set('role', role);
            if (cursor) params.set('cursor', cursor);
            const page = await api.get(`/v1/firms/${firmId}/mfa/enrolled-users?${params}`, reader);
            expect(page.status).toBe(200);
            expect(page.body.items.length).toBeLessThanOrEqual(limit);
            seen.push(...page.body.items);
            cursor = page.body.nextCursor;
            expect(++pages).toBeLessThanOrEqual(wanted.length + 1);
          } while (cursor);
          expect(seen).toEqual(wanted);
        },
      ),
      { numRuns: 25 },
    );
  });
});
