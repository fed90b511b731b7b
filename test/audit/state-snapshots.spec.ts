import fc from 'fast-check';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { stateAsOf } from '../../src/audit/state-as-of';
import { StateSnapshots } from '../../src/audit/state-snapshots';
import type { JsonObject, NewEvent } from '../../src/event-store/event-store.port';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { tempDir } from '../support/harness';
import { newEvent } from '../support/log-events';

/*
 * The state as of a moment resumes from snapshots of earlier folds
 * (state-snapshots.ts). Whatever moments are asked, in whatever order, and
 * however the events' times run (clocks of two instances disagree: a later
 * event may carry an earlier time), an answer from a snapshot must equal the
 * answer folded from the first event.
 */

const BASE = Date.parse('2026-01-15T09:00:00.000Z');
const minutes = (n: number) => new Date(BASE + n * 60_000).toISOString();

type Step =
  | { kind: 'register' | 'confirm' | 'reset' | 'deactivate' | 'seat'; user: number; at: number }
  | { kind: 'activate' | 'licenses'; count: number; at: number }
  | { kind: 'switch'; enabled: boolean; at: number };

const at = fc.integer({ min: 0, max: 120 });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constantFrom('register', 'confirm', 'reset', 'deactivate', 'seat'),
    user: fc.integer({ min: 0, max: 5 }),
    at,
  }) as fc.Arbitrary<Step>,
  fc.record({
    kind: fc.constantFrom('activate', 'licenses'),
    count: fc.integer({ min: 0, max: 6 }),
    at,
  }) as fc.Arbitrary<Step>,
  fc.record({ kind: fc.constant('switch'), enabled: fc.boolean(), at }) as fc.Arbitrary<Step>,
);

/** The stream and event a step appends, as the slices write them. */
function eventOf(step: Step, index: number): { streamId: string; event: NewEvent } {
  const occurredAt = minutes(step.at);
  const of = (streamId: string, type: string, data: JsonObject, schemaVersion = 1) => {
    const event = newEvent('acme', type, data);
    event.metadata = { ...event.metadata, occurredAt, schemaVersion };
    return { streamId, event };
  };
  switch (step.kind) {
    case 'activate':
      return of('subscription-acme', 'SubscriptionActivated', {
        plan: 'p',
        licenseCount: step.count,
        activatedAt: occurredAt,
      });
    case 'licenses':
      return of('subscription-acme', 'LicenseCountChanged', {
        licenseCount: step.count,
        previousLicenseCount: 0,
        seatsInUse: 0,
        forced: false,
        changedAt: occurredAt,
      });
    case 'switch':
      return of('enablement-acme', 'CaseManagersEnablementChanged', {
        enabled: step.enabled,
        changedAt: occurredAt,
      });
    case 'seat':
      return of(
        'subscription-acme',
        'SeatAssigned',
        { userId: `u${step.user}`, assignedAt: occurredAt, generation: 0, enrollmentId: null },
        2,
      );
    default: {
      const userId = `u${step.user}`;
      const stream = `user-acme/${userId}`;
      if (step.kind === 'register') {
        return of(stream, 'UserRegistered', {
          userId,
          role: step.user % 2 === 0 ? 'case-manager' : 'vendor-case-manager',
          corporationId: null,
          name: `User ${step.user}`,
          email: `${userId}@example.com`,
          organization: null,
          billingContact: false,
          firmAdmin: false,
          registeredAt: occurredAt,
        });
      }
      if (step.kind === 'confirm') {
        return of(stream, 'FactorConfirmed', {
          userId,
          factorId: `f${index}`,
          enrollmentId: `e${index}`,
          factorType: index % 2 === 0 ? 'totp' : 'webauthn',
          label: 'x',
          generation: 0,
          confirmedAt: occurredAt,
        });
      }
      if (step.kind === 'reset') {
        return of(stream, 'EnrollmentReset', {
          userId,
          reason: 'r',
          trigger: 'superuser',
          factorIds: [],
          generation: 1,
          resetAt: occurredAt,
        });
      }
      return of(stream, 'UserDeactivated', {
        userId,
        reason: 'account-disabled',
        deactivatedAt: occurredAt,
      });
    }
  }
}

describe('the state as of a moment, resumed from snapshots', () => {
  it('answers what a fold from the first event answers, for any history and moments', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 40 }),
        fc.array(fc.integer({ min: -5, max: 130 }), { minLength: 1, maxLength: 8 }),
        async (steps, moments) => {
          const dir = tempDir('mfa-snapshots-');
          const store = new SqliteEventStore(join(dir, 'events.sqlite'));
          try {
            for (const [index, s] of steps.entries()) {
              const { streamId, event } = eventOf(s, index);
              await store.appendToStream(streamId, [event], 'any');
            }
            const snapshots = new StateSnapshots({ every: 3, perFirm: 4 });
            for (const moment of moments) {
              const asOf = BASE + moment * 60_000;
              const resumed = await stateAsOf(store, 'acme', asOf, { snapshots });
              const fresh = await stateAsOf(store, 'acme', asOf);
              expect({ moment, resumed }).toEqual({ moment, resumed: fresh });
            }
          } finally {
            await store.close();
            rmSync(dir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('resumes from the latest usable snapshot, and forgets them when the skips change', async () => {
    const dir = tempDir('mfa-snapshots-');
    const store = new SqliteEventStore(join(dir, 'events.sqlite'));
    try {
      for (let i = 0; i < 30; i++) {
        const { streamId, event } = eventOf({ kind: 'register', user: i % 6, at: i }, i);
        await store.appendToStream(streamId, [event], 'any');
      }
      const snapshots = new StateSnapshots({ every: 5, perFirm: 3 });
      const readFirm = jest.spyOn(store, 'readFirm');
      await stateAsOf(store, 'acme', BASE + 29 * 60_000, { snapshots });
      const firstReads = readFirm.mock.calls.length;
      readFirm.mockClear();
      // Asked again later: from the last snapshot, one read that finds nothing new.
      const again = await stateAsOf(store, 'acme', BASE + 60 * 60_000, { snapshots });
      expect(readFirm.mock.calls).toHaveLength(1);
      expect(readFirm.mock.calls[0][1].after).toBe(BigInt(again.position));
      expect(firstReads).toBeGreaterThanOrEqual(1);
      // An earlier moment starts from a snapshot at or before it.
      readFirm.mockClear();
      await stateAsOf(store, 'acme', BASE + 12 * 60_000, { snapshots });
      expect(readFirm.mock.calls[0][1].after).toBeGreaterThan(0n);
      // Other skips: other folds.
      readFirm.mockClear();
      await stateAsOf(store, 'acme', BASE + 29 * 60_000, {
        snapshots,
        skips: new Map([['role-counters', new Set([3n])]]),
      });
      expect(readFirm.mock.calls[0][1].after).toBe(0n);
      expect(snapshots.documents).toBeGreaterThan(0);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
