import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_PROJECTIONS } from '../../projections';
import type { EventStore, RecordedEvent } from '../../src/event-store/event-store.port';
import { schemaOf } from '../../src/projection-engine/projection-engine';
import { rebuildProjections } from '../../src/projection-engine/rebuild';
import { SqliteReadModelStore } from '../../src/read-model/sqlite-read-model-store';
import { streams } from '../../src/shared/ids';
import type { ReceivedMail } from './smtp-sink';

/*
 * The guarantees of issue 11, checked from the log itself after a round of
 * the soak (test/support/guarantees-soak.ts): what the clients were told
 * (their records of every command and attempt) against what the log holds,
 * S1 and S2 (DESIGN §3), the read models against a rebuild from zero
 * (DESIGN §6), and the emails the SMTP server received against the queue in
 * the log (DESIGN §5). Each check answers the violations it found, each a
 * sentence naming the command, the events (positions) or the message involved.
 */

/** What a client sends. `totp-verify` ignores Idempotency-Key (API.md): a retry would be a new attempt. */
export type CommandKind =
  | 'request-subscription'
  | 'activate'
  | 'cancel'
  | 'licenses'
  | 'enablement'
  | 'register'
  | 'deactivate'
  | 'reactivate'
  | 'totp-start'
  | 'totp-confirm'
  | 'reset'
  | 'totp-verify';

/** A 2xx of these always stands for events of this very command (never a no-op). */
const MUST_APPEND: ReadonlySet<CommandKind> = new Set([
  'totp-start',
  'totp-confirm',
  'totp-verify',
]);

export interface Attempt {
  /** Unique per attempt (X-Correlation-Id): the events of the attempt that applied carry it. */
  correlationId: string;
  /** Which of the two instances (0 or 1) it was sent to. */
  instance: number;
  startedAt: number;
  endedAt: number;
  /** The HTTP status; absent when the answer was lost (the connection was cut by a kill). */
  status?: number;
  /** The problem type's last segment of a 4xx/5xx answer. */
  problem?: string;
  /** Answered from the idempotency store (`Idempotent-Replayed: true`). */
  replayed?: boolean;
  /** Why no answer came. */
  lost?: string;
}

export interface CommandRecord {
  seq: number;
  client: number;
  kind: CommandKind;
  firmId: string;
  userId?: string;
  method: 'POST' | 'PUT';
  path: string;
  body: Record<string, unknown>;
  key: string;
  /**
   * The command id the service derives from the key's scope (docs/architecture.md,
   * Idempotency); absent for a verification, which gets a random one.
   */
  commandId?: string;
  attempts: Attempt[];
  /** The answer that settled the command (a 2xx, or a refusal); absent while unanswered. */
  answer?: { status: number; body: any; attempt: number };
  /** Set while the command waits to be retried (an answer lost, a claim still held). */
  retryAfter?: number;
}

/** A SIGKILL of one or both instances. */
export interface Kill {
  /** When the signal was sent. */
  at: number;
  /** When the test saw the process gone. */
  exitedAt: number;
  instances: number[];
  /** Whether one of them held the mailer's lease when it died (the lease row, read right after). */
  mailerHolder: boolean;
  /** From the exit until the restarted instances listened. */
  restartMs?: number;
  /** It came after the shared state store had stalled this long (ms), 0 if not. */
  stallMs?: number;
}

export interface CheckResult {
  violations: string[];
  /** How many things the check looked at (commands, seats, documents, emails). */
  checked: number;
}

const isOk = (status: number | undefined) => status !== undefined && status >= 200 && status < 300;
const positionOf = (answer: { body: any }) => BigInt(String(answer.body?.position ?? '-1'));
const describe = (c: CommandRecord) =>
  `command #${c.seq} (${c.kind} ${c.method} ${c.path} ${JSON.stringify(c.body)}, key ${c.key}, ` +
  `attempts ${c.attempts.map((a) => `${a.correlationId}@${a.instance}:${a.status ?? `lost(${a.lost})`}`).join(' ')})`;
const positions = (events: readonly RecordedEvent[]) =>
  events.map((e) => `${e.position} ${e.streamId}#${e.revision} ${e.type}`).join(', ');

/** The events of each command id, in log order. */
const byCommand = (log: readonly RecordedEvent[]) => groupBy(log, (e) => e.metadata.commandId);

/**
 * Check 1, every command applies once:
 *  - no event id twice in the log;
 *  - every command id's events are one append: consecutive positions, consecutive
 *    revisions per stream, one decision time (a retried command adds nothing);
 *  - every acknowledged (2xx) command: its events are there, appended by one of
 *    its attempts, and its answer's position is theirs (or, for an answer
 *    given again, at least theirs); a command that decided nothing answered a
 *    position of one of its streams;
 *  - a command refused on every attempt that got through appended nothing (one
 *    whose lost attempt applied and whose retry was refused is answered in
 *    `refusedRetries`);
 *  - no answer was a server error, a rate limit or a key reuse.
 */
export function checkApplyOnce(
  log: readonly RecordedEvent[],
  commands: readonly CommandRecord[],
): CheckResult & { recovered: number; refusedRetries: string[] } {
  const violations: string[] = [];
  const ids = groupBy(log, (e) => e.metadata.eventId);
  for (const [eventId, events] of ids) {
    if (events.length > 1)
      violations.push(
        `event id ${eventId} is in the log ${events.length} times: ${positions(events)}`,
      );
  }
  const commandEvents = byCommand(log);
  for (const [commandId, events] of commandEvents) {
    const problem = notOneAppend(events);
    if (problem)
      violations.push(
        `command id ${commandId} is not one append (${problem}): ${positions(events)}`,
      );
  }
  const atPosition = new Map(log.map((e) => [e.position, e]));
  const head = log.length > 0 ? log[log.length - 1].position : 0n;
  // A verification's command id is random: its events are found by the attempt's correlation id.
  const byCorrelation = groupBy(
    log.filter((e) => e.metadata.actor?.role !== 'system'),
    (e) => e.metadata.correlationId,
  );

  let checked = 0;
  let recovered = 0;
  const refusedRetries: string[] = [];
  for (const command of commands) {
    for (const attempt of command.attempts) {
      if (
        attempt.status !== undefined &&
        (attempt.status >= 500 || [422, 429].includes(attempt.status))
      ) {
        violations.push(
          `unexpected answer ${attempt.status} ${attempt.problem ?? ''} to ${describe(command)}`,
        );
      }
    }
    const answer = command.answer;
    if (!answer) continue;
    const answered = command.attempts[answer.attempt];
    const lostBefore = command.attempts.some((a) => a.status === undefined);
    if (command.kind === 'totp-verify') {
      const events = byCorrelation.get(answered.correlationId) ?? [];
      if (!isOk(answer.status)) continue;
      checked++;
      if (events.length === 0) {
        violations.push(`acknowledged ${describe(command)} has no event in the log`);
      } else if (
        new Set(events.map((e) => e.metadata.commandId)).size !== 1 ||
        events[events.length - 1].type !== 'TotpVerificationSucceeded' ||
        events[events.length - 1].position !== positionOf(answer)
      ) {
        violations.push(
          `acknowledged ${describe(command)} answered position ${answer.body?.position}, its events: ${positions(events)}`,
        );
      }
      continue;
    }
    const events = commandEvents.get(command.commandId!) ?? [];
    if (!isOk(answer.status)) {
      checked++;
      if (events.length === 0) continue;
      if (!lostBefore) {
        // A refusal appends nothing.
        violations.push(
          `refused ${describe(command)} (${answer.status} ${answered.problem}) appended ${positions(events)}`,
        );
      } else {
        // The lost attempt applied; its retry was refused on today's state (the enrollment
        // endpoints check the user and the enrollment before the command handler finds the
        // command in the stream). Applied once all the same: reported, not a violation.
        refusedRetries.push(
          `${describe(command)}: refused ${answer.status} ${answered.problem}, applied by the lost attempt: ${positions(events)}`,
        );
      }
      continue;
    }
    checked++;
    const position = positionOf(answer);
    if (position > head) {
      violations.push(
        `acknowledged ${describe(command)} answered position ${position}, past the head ${head}`,
      );
    }
    if (events.length > 0) {
      const mine = new Set(command.attempts.map((a) => a.correlationId));
      const foreign = events.filter((e) => !mine.has(e.metadata.correlationId));
      if (foreign.length > 0) {
        violations.push(
          `events of ${describe(command)} carry a correlation id of none of its attempts: ${positions(foreign)}`,
        );
      }
      const last = events[events.length - 1].position;
      const byItself =
        !answered.replayed &&
        events.every((e) => e.metadata.correlationId === answered.correlationId);
      // Applied by an attempt whose answer was lost, answered by a retry: the case that matters.
      if (!events.some((e) => e.metadata.correlationId === answered.correlationId)) recovered++;
      if (byItself ? position !== last : position < last) {
        violations.push(
          `acknowledged ${describe(command)} answered position ${position}, its events end at ${last}: ${positions(events)}`,
        );
      }
      continue;
    }
    if (MUST_APPEND.has(command.kind)) {
      violations.push(`acknowledged ${describe(command)} has no event in the log`);
      continue;
    }
    // Decided nothing: it answered the last position of the streams it decided on.
    const at = atPosition.get(position);
    if (position !== 0n && (!at || !streamsOf(command).includes(at.streamId))) {
      violations.push(
        `acknowledged no-op ${describe(command)} answered position ${position}, which holds ${at ? positions([at]) : 'nothing'}`,
      );
    }
  }
  return { violations, checked, recovered, refusedRetries };
}

/** The streams a command decides on: a no-op answers the last position among them. */
function streamsOf(command: CommandRecord): string[] {
  const { firmId, userId } = command;
  switch (command.kind) {
    case 'request-subscription':
    case 'activate':
    case 'cancel':
    case 'licenses':
      return [streams.subscription(firmId)];
    case 'enablement':
      return [streams.enablement(firmId)];
    case 'register':
    case 'reactivate':
    case 'totp-start':
    case 'totp-confirm':
      return [streams.user(firmId, userId!)];
    case 'deactivate':
    case 'reset':
      return [streams.user(firmId, userId!), streams.subscription(firmId)];
    case 'totp-verify':
      return [streams.verification(firmId, userId!)];
  }
}

/** Why the events of one command id are not a single append, if they are not. */
function notOneAppend(events: readonly RecordedEvent[]): string | undefined {
  for (let i = 1; i < events.length; i++) {
    if (events[i].position !== events[i - 1].position + 1n) return 'positions not consecutive';
  }
  for (const [, inStream] of groupBy(events, (e) => e.streamId)) {
    for (let i = 1; i < inStream.length; i++) {
      if (inStream[i].revision !== inStream[i - 1].revision + 1n)
        return 'revisions not consecutive';
    }
  }
  if (new Set(events.map((e) => e.metadata.occurredAt)).size > 1) return 'decided more than once';
  return undefined;
}

interface UserSeatState {
  generation: number;
  /** Confirmed factors since the last reset: factor id to its enrollment. */
  factors: Map<string, string>;
}

/**
 * Check 2, the seats of every firm (DESIGN §3), from the subscription and user streams:
 *  - S1 at every event of the subscription stream: seats in use never exceed
 *    the license count, except after an operator forced a lower count, and then
 *    no new seat is given while usage is not below it;
 *  - S2 after every append (seat and factor commit together, ADR 0013) and at
 *    the end (quiet): seat holders are exactly the users with a confirmed
 *    factor since their last reset, each seat of the user's generation and of
 *    one of its factors' enrollments;
 *  - no seat repair failed, and the seat keeper had nothing to repair.
 */
export function checkSeats(log: readonly RecordedEvent[], firms: readonly string[]): CheckResult {
  const violations: string[] = [];
  let checked = 0;
  for (const firmId of firms) {
    const subscriptionStream = streams.subscription(firmId);
    const userPrefix = streams.user(firmId, '');
    let licenseCount = 0;
    const holders = new Map<string, { generation: number; enrollmentId: string | null }>();
    const users = new Map<string, UserSeatState>();
    const userOf = (id: string) => {
      let user = users.get(id);
      if (!user) users.set(id, (user = { generation: 0, factors: new Map() }));
      return user;
    };
    const s2 = (userId: string): string | undefined => {
      const seat = holders.get(userId);
      const user = users.get(userId);
      const factors = user?.factors.size ?? 0;
      if (!seat && factors === 0) return undefined;
      if (!seat)
        return `${userId} has ${factors} confirmed factor(s) of generation ${user!.generation} and no seat`;
      if (!user || factors === 0)
        return `${userId} holds a seat (generation ${seat.generation}) without a confirmed factor`;
      if (seat.generation !== user.generation) {
        return `${userId} holds the seat of generation ${seat.generation}, its factors are of generation ${user.generation}`;
      }
      if (seat.enrollmentId !== null && ![...user.factors.values()].includes(seat.enrollmentId)) {
        return `${userId}'s seat was taken for enrollment ${seat.enrollmentId}, not one of its factors`;
      }
      return undefined;
    };

    const firmLog = log.filter(
      (e) => e.streamId === subscriptionStream || e.streamId.startsWith(userPrefix),
    );
    let touched = new Set<string>();
    for (let i = 0; i < firmLog.length; i++) {
      const event = firmLog[i];
      const data = event.data as Record<string, any>;
      if (event.streamId === subscriptionStream) {
        let adds = false;
        switch (event.type) {
          case 'SubscriptionActivated':
          case 'LicenseCountChanged':
            licenseCount = Number(data.licenseCount);
            break;
          case 'SeatAssigned':
            adds = !holders.has(data.userId);
            holders.set(data.userId, {
              generation: Number(data.generation ?? 0),
              enrollmentId: data.enrollmentId ?? null,
            });
            touched.add(data.userId);
            break;
          case 'SeatReleased':
            holders.delete(data.userId);
            touched.add(data.userId);
            break;
          case 'SeatRepairFailed':
            violations.push(
              `S2: ${firmId}: seat repair failed at ${positions([event])}: ${data.reason}`,
            );
            break;
        }
        checked++;
        // Only a forced lower count may leave usage above it; no seat is given while it is.
        const raises =
          adds ||
          event.type === 'SubscriptionActivated' ||
          (event.type === 'LicenseCountChanged' && data.forced !== true);
        if (raises && holders.size > licenseCount) {
          violations.push(
            `S1: ${firmId}: ${holders.size} seats in use > ${licenseCount} licenses after ${positions([event])}`,
          );
        }
        if (
          event.metadata.actor?.role === 'system' &&
          /^Seat(Assigned|Released)$/.test(event.type)
        ) {
          violations.push(
            `S2: ${firmId}: the seat keeper repaired a seat on a store with atomic appends: ${positions([event])}`,
          );
        }
      } else {
        const userId = event.streamId.slice(userPrefix.length);
        const user = userOf(userId);
        if (event.type === 'FactorConfirmed') {
          user.factors.set(String(data.factorId), String(data.enrollmentId));
          touched.add(userId);
        } else if (event.type === 'EnrollmentReset') {
          user.factors = new Map();
          user.generation = Number(data.generation);
          touched.add(userId);
        }
      }
      const next = firmLog[i + 1];
      if (!next || next.metadata.commandId !== event.metadata.commandId) {
        // The end of one append: seat and factor changes commit together.
        for (const userId of touched) {
          const broken = s2(userId);
          if (broken)
            violations.push(
              `S2 after the append ending at ${positions([event])}: ${firmId}: ${broken}`,
            );
        }
        touched = new Set();
      }
    }
    for (const userId of new Set([...holders.keys(), ...users.keys()])) {
      checked++;
      const broken = s2(userId);
      if (broken) violations.push(`S2 at quiet: ${firmId}: ${broken}`);
    }
  }
  return { violations, checked };
}

/**
 * Check 3: every read model equals a rebuild from zero. The log is rebuilt
 * into a fresh read-model file (new tables, nothing shared with the served
 * ones) and compared with the generations the instances serve, document by
 * document. Run once the instances are quiet (every projection at the head).
 */
export async function checkReadModels(
  dataDir: string,
  log: EventStore,
  scratchDir: string,
): Promise<CheckResult> {
  const violations: string[] = [];
  const live = new SqliteReadModelStore(join(dataDir, 'readmodels.sqlite'));
  const file = join(scratchDir, `rebuild-${Date.now()}.sqlite`);
  const fresh = new SqliteReadModelStore(file);
  try {
    const results = await rebuildProjections(log, fresh, ALL_PROJECTIONS);
    for (const result of results) {
      if (result.quarantined.length > 0) {
        violations.push(
          `read models: the rebuild of ${result.projection} quarantined ${result.quarantined.map((q) => `${q.position} (${q.reason})`).join(', ')}`,
        );
      }
    }
    const served = await documents(live);
    const rebuilt = await documents(fresh);
    for (const [id, doc] of served) {
      const other = rebuilt.get(id);
      if (other === undefined)
        violations.push(`read models: ${id} is served but not rebuilt: ${doc}`);
      else if (other !== doc)
        violations.push(`read models: ${id} differs\n  served:  ${doc}\n  rebuilt: ${other}`);
    }
    for (const [id, doc] of rebuilt) {
      if (!served.has(id)) violations.push(`read models: ${id} is rebuilt but not served: ${doc}`);
    }
    return { violations, checked: served.size };
  } finally {
    await live.close();
    await fresh.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
  }
}

/** Every document of every read model, as stored in the served generation: "projection/collection/id" to its JSON. */
async function documents(store: SqliteReadModelStore): Promise<Map<string, string>> {
  const active = await store.activeGenerations();
  const all = new Map<string, string>();
  for (const projection of ALL_PROJECTIONS) {
    const generation = active.get(projection.name);
    if (generation === undefined) continue;
    const target = { projection: projection.name, generation };
    await store.prepare(schemaOf(projection), generation);
    for (const collection of projection.collections) {
      for (const row of await store.scan(target, collection.name)) {
        all.set(`${projection.name}/${collection.name}/${row.id}`, JSON.stringify(row.doc));
      }
    }
  }
  return all;
}

/** How much later than the exit of a killed instance the test may read the bytes it sent before. */
const READ_SLACK_MS = 1000;

/** The message id of a Message-ID header (`<id@domain>`). */
export const messageIdOf = (header: string) => /^<([^@>]+)@[^>]*>$/.exec(header)?.[1] ?? header;

/**
 * Check 4, every due email went out once (DESIGN §5): each EmailQueued that
 * no EmailFailed answers arrived, once per Message-ID, with its recipient and
 * notification, and is recorded sent once; nothing else arrived. A second copy
 * is allowed only for a message in flight at a kill: the server had the first
 * copy before the kill of the instance holding the mailer's lease, and the
 * message was recorded sent only after that kill.
 */
export function checkEmails(
  log: readonly RecordedEvent[],
  received: readonly ReceivedMail[],
  kills: readonly Kill[],
): CheckResult & { copies: number } {
  const violations: string[] = [];
  const queued = new Map<string, RecordedEvent>();
  const failed = new Set<string>();
  const sent = groupBy(
    log.filter((e) => e.type === 'EmailSent'),
    (e) => String(e.data.messageId),
  );
  for (const event of log) {
    const messageId = String(event.data.messageId);
    if (event.type === 'EmailQueued') {
      if (queued.has(messageId))
        violations.push(
          `emails: ${messageId} queued twice: ${positions([queued.get(messageId)!, event])}`,
        );
      queued.set(messageId, event);
    } else if (event.type === 'EmailFailed') {
      failed.add(messageId);
    }
  }
  const arrivals = groupBy(received, (mail) => messageIdOf(mail.messageId));
  for (const [messageId, copies] of arrivals) {
    if (!queued.has(messageId)) {
      violations.push(
        `emails: ${copies.length} message(s) with Message-ID ${messageId} arrived, never queued`,
      );
    }
  }
  let copiesAfterKills = 0;
  let checked = 0;
  for (const [messageId, event] of queued) {
    if (failed.has(messageId)) continue;
    checked++;
    const copies = [...(arrivals.get(messageId) ?? [])].sort(
      (a, b) => a.dataEndedAt - b.dataEndedAt,
    );
    const recipient = (event.data.recipient as { email: string }).email;
    const notification = String(event.data.notification);
    const records = sent.get(messageId) ?? [];
    if (copies.length === 0)
      violations.push(
        `emails: ${notification} to ${recipient} (${messageId}, queued at ${event.position}) never arrived`,
      );
    if (records.length !== 1)
      violations.push(
        `emails: ${messageId} is recorded sent ${records.length} times: ${positions(records)}`,
      );
    for (const copy of copies) {
      if (copy.to !== recipient || copy.notification !== notification) {
        violations.push(
          `emails: ${messageId} was queued as ${notification} to ${recipient}, arrived as ${copy.notification} to ${copy.to}`,
        );
      }
    }
    const recordedAt = records.length > 0 ? Date.parse(records[0].metadata.occurredAt) : Infinity;
    for (let i = 1; i < copies.length; i++) {
      // The server had the copy before the holder was gone (its bytes may be read here a little
      // after the exit was seen), the next copy came after the kill, and so did the record.
      const between = kills.find(
        (k) =>
          k.mailerHolder &&
          copies[i - 1].dataEndedAt < k.exitedAt + READ_SLACK_MS &&
          k.at < copies[i].dataEndedAt &&
          recordedAt > k.at,
      );
      if (between) {
        copiesAfterKills++;
      } else {
        violations.push(
          `emails: ${notification} to ${recipient} (${messageId}) arrived ${copies.length} times ` +
            `(at ${copies.map((c) => new Date(c.dataEndedAt).toISOString()).join(', ')}), recorded sent at ` +
            `${records[0]?.metadata.occurredAt ?? 'never'}, copy ${i + 1} without a kill of the mailer's holder in between ` +
            `(kills: ${kills.map((k) => `${new Date(k.at).toISOString()} ${k.instances.join('+')}${k.mailerHolder ? ' holder' : ''}`).join(', ') || 'none'})`,
        );
      }
    }
  }
  return { violations, checked, copies: copiesAfterKills };
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}
