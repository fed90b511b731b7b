import { randomUUID } from 'node:crypto';
import type { EventStore, JsonObject, NewEvent } from '../../src/event-store/event-store.port';
import { streams } from '../../src/shared/ids';

/*
 * Events appended straight to the log, as the enrollment slice writes them,
 * for read-model tests that must not depend on the enrollment endpoints.
 */

export function newEvent(firmId: string, type: string, data: JsonObject): NewEvent {
  const id = randomUUID();
  return {
    type,
    data,
    metadata: {
      eventId: id,
      firmId,
      actor: { id: 'test', role: 'system' },
      correlationId: id,
      causationId: id,
      commandId: id,
      occurredAt: '2026-01-15T09:00:00.000Z',
      schemaVersion: 1,
    },
  };
}

export class LogWriter {
  constructor(private readonly store: EventStore) {}

  async append(streamId: string, firmId: string, ...events: Array<[string, JsonObject]>) {
    const result = await this.store.appendToStream(
      streamId,
      events.map(([type, data]) => newEvent(firmId, type, data)),
      'any',
    );
    return String(result.position);
  }

  confirmFactor(
    firmId: string,
    userId: string,
    factorId: string,
    factorType: 'totp' | 'webauthn',
    confirmedAt = '2026-01-15T10:00:00.000Z',
  ) {
    return this.append(streams.user(firmId, userId), firmId, [
      'FactorConfirmed',
      {
        userId,
        factorId,
        enrollmentId: `enr-${factorId}`,
        factorType,
        label: factorType,
        generation: 0,
        confirmedAt,
      },
    ]);
  }

  resetEnrollment(firmId: string, userId: string, factorIds: string[]) {
    return this.append(streams.user(firmId, userId), firmId, [
      'EnrollmentReset',
      {
        userId,
        reason: 'test',
        trigger: 'superuser',
        factorIds,
        generation: 1,
        resetAt: '2026-01-15T11:00:00.000Z',
      },
    ]);
  }

  assignSeat(firmId: string, userId: string) {
    return this.append(streams.subscription(firmId), firmId, [
      'SeatAssigned',
      { userId, assignedAt: '2026-01-15T10:00:00.000Z', generation: 0, enrollmentId: null },
    ]);
  }

  releaseSeat(firmId: string, userId: string) {
    return this.append(streams.subscription(firmId), firmId, [
      'SeatReleased',
      { userId, reason: 'reset', releasedAt: '2026-01-15T11:00:00.000Z', generation: 0 },
    ]);
  }
}
