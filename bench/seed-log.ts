import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import type { EventMetadata, JsonObject } from '../src/event-store/event-store.port';
import { SqliteEventStore } from '../src/event-store/sqlite-event-store';
import { eventHash } from '../src/shared/event-hash';

/*
 * A big log for the benches, written straight into events.sqlite: shared by
 * bench/read-models.bench.ts (rebuilds, searches) and bench/audit.bench.ts
 * (exports, the state as of a moment).
 */

const NAMES = ['Ann', 'Bob', 'Carla', 'Dmitri', 'Élodie', 'Farah', 'Gus', 'Hana', 'Ivo', 'Jun'];
const SURNAMES = ['Smith', 'Okafor', 'Nguyen', 'García', 'Kowalski', 'Rossi', 'Tanaka', 'Müller'];
const ORGS = ['Acme Law', 'Globex', 'Initech', 'Umbrella', 'Stark Legal', null];
const START = Date.parse('2026-01-15T09:00:00.000Z');

function metadata(firmId: string, type: string, occurredAt: string) {
  const id = randomUUID();
  return {
    eventId: id,
    firmId,
    actor: { id: 'bench', role: 'system' },
    correlationId: id,
    causationId: id,
    commandId: id,
    occurredAt,
    schemaVersion: type.startsWith('Seat') ? 2 : 1,
  };
}

export interface SeedOptions {
  /** About how many events to write (the log ends within four events of it). */
  events: number;
  /** How many of the enrolled users belong to firm "big"; the others are spread over 200 firms. */
  bigFirmUsers: number;
  /**
   * Chain every event as a chained append does (metadata.hash and previousHash,
   * ADR 0017). Costs a hash per event while seeding.
   */
  chained?: boolean;
  /**
   * Milliseconds between the `occurredAt` of one event and the next, from
   * 2026-01-15T09:00:00Z; 0 (the default): every event at that moment.
   */
  spacing?: number;
}

/**
 * Writes a log straight into events.sqlite, bypassing the service: per firm a
 * subscription and the case-manager switch, then four events per enrolled
 * user (registered, TOTP started, factor confirmed, seat assigned), the first
 * `bigFirmUsers` of them in firm "big". Answers how many events it wrote.
 */
export function seedLog(
  file: string,
  { events, bigFirmUsers, chained = false, spacing = 0 }: SeedOptions,
): number {
  new SqliteEventStore(file).close().catch(() => undefined);
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const insert = db.prepare(
    'INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const revisions = new Map<string, number>();
  const heads = new Map<string, string>();
  let count = 0;
  const add = (firmId: string, stream: string, type: string, data: JsonObject) => {
    const revision = revisions.get(stream) ?? 0;
    revisions.set(stream, revision + 1);
    const occurredAt = new Date(START + count * spacing).toISOString();
    const meta: Record<string, unknown> = metadata(firmId, type, occurredAt);
    if (chained) {
      const previousHash = heads.get(stream) ?? null;
      const content = { streamId: stream, revision: BigInt(revision), type, data };
      const hash = eventHash(
        { ...content, metadata: meta as unknown as EventMetadata },
        previousHash,
      );
      Object.assign(meta, { hash, previousHash });
      heads.set(stream, hash);
    }
    insert.run(meta.eventId, stream, revision, type, JSON.stringify(data), JSON.stringify(meta));
    count++;
  };
  const at = '2026-01-15T10:00:00.000Z';
  const firms = ['big', ...Array.from({ length: 200 }, (_, i) => `firm${i}`)];
  const insertAll = db.transaction(() => {
    for (const firmId of firms) {
      add(firmId, `subscription-${firmId}`, 'SubscriptionRequested', {
        plan: 'p',
        requestedAt: at,
      });
      add(firmId, `subscription-${firmId}`, 'SubscriptionActivated', {
        plan: 'p',
        licenseCount: 1_000_000,
        activatedAt: at,
      });
      add(firmId, `enablement-${firmId}`, 'CaseManagersEnablementChanged', {
        enabled: true,
        changedAt: at,
      });
    }
    let user = 0;
    while (count < events - 4) {
      const firmId = user < bigFirmUsers ? 'big' : firms[1 + (user % 200)];
      const userId = `user${user}`;
      const stream = `user-${firmId}/${userId}`;
      const corporate = user % 3 === 0;
      add(firmId, stream, 'UserRegistered', {
        userId,
        role: corporate ? 'corp-user' : 'case-manager',
        corporationId: corporate ? `corp${user % 500}` : null,
        name: `${NAMES[user % NAMES.length]} ${SURNAMES[(user >> 3) % SURNAMES.length]} ${user}`,
        email: `${userId}@example.com`,
        organization: ORGS[user % ORGS.length],
        billingContact: false,
        firmAdmin: false,
        registeredAt: at,
      });
      add(firmId, stream, 'TotpEnrollmentStarted', {
        userId,
        enrollmentId: `e${user}`,
        label: 'phone',
        generation: 0,
        expiresAt: at,
        startedAt: at,
        secret: { keyId: 'k', iv: 'x', data: 'y' },
      });
      add(firmId, stream, 'FactorConfirmed', {
        userId,
        factorId: `f${user}`,
        enrollmentId: `e${user}`,
        factorType: user % 5 === 0 ? 'webauthn' : 'totp',
        label: 'phone',
        generation: 0,
        confirmedAt: at,
      });
      add(firmId, `subscription-${firmId}`, 'SeatAssigned', {
        userId,
        assignedAt: at,
        generation: 0,
        enrollmentId: `e${user}`,
      });
      user++;
    }
  });
  insertAll();
  db.close();
  return count;
}
