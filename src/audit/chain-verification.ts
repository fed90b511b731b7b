import type { RecordedEvent } from '../event-store/event-store.port';
import { chainLinkOf, eventHash, KEY_MATERIAL } from '../shared/event-hash';
import { firmOfStream, streams } from '../shared/ids';
import { STREAM_HEADS_ANCHORED } from './anchor.decider';

/*
 * Checks one firm's history against its hash chains and anchors (ADR 0017).
 * A pure fold over the firm's events in log order: no framework, no I/O, so
 * the HTTP endpoint, the CLI and the tests run the same code over whatever
 * reads the log. Memory is bounded by the firm's number of streams (one
 * head each) plus a fixed window of recent hashes, whatever the history's length.
 */

/** The answer of a verification (API.md, Audit: `GET /v1/audit/firms/{firmId}/verify`). */
export interface ChainVerification {
  /** True when nothing is broken. Unchained history before chaining began is not broken. */
  ok: boolean;
  /** Events examined: all of the firm's when ok; up to and including the broken one when not. */
  eventsChecked: number;
  /**
   * Log position (decimal) of the event at which the history is first seen to
   * be broken: the edited event, the event after a removed one, the first of
   * two swapped ones, the anchor naming an event that is gone.
   */
  firstBrokenPosition?: string;
  /** `code: words`; the code is stable (`BREAK_CODES`), the words say what was found. */
  reason?: string;
  /**
   * Set when the firm's history starts with events written before hash chains
   * existed: every event before this position (decimal) is unchained, and
   * could not be checked. When no event is chained at all, the position after
   * the last one.
   */
  unchainedBefore?: string;
}

/** The stable codes that start `reason`. */
export const BREAK_CODES = [
  /** The events were not given in log order (a caller's error, or a damaged log). */
  'log-order',
  /** The stored event cannot be read (not JSON). */
  'unreadable-event',
  /** An event of another firm's stream, or naming another firm. */
  'foreign-event',
  /** `hash` or `previousHash` are present but not well formed. */
  'malformed-chain',
  /** An event without chain fields after the firm's first chained one. */
  'unchained-event',
  /** A stream's revision jumps: an event is missing before this one. */
  'revision-gap',
  /** A stream's revision goes back or repeats: events reordered or inserted. */
  'revision-order',
  /** `previousHash` is not the hash of the stream's previous event. */
  'chain-link',
  /** The event's content does not give its hash: it was edited. */
  'edited',
  /**
   * A stored event holds the digest of its key material instead of the key
   * material: the hash cannot tell (it covers the digest, so that exports
   * verify), but the log must hold the material itself.
   */
  'key-material-removed',
  /** An anchor that cannot be read. */
  'anchor-malformed',
  /** An anchor names a revision the stream no longer reaches: events removed at its end. */
  'stream-truncated',
  /** An anchor names a hash that is not the event's. */
  'anchor-mismatch',
] as const;
export type BreakCode = (typeof BREAK_CODES)[number];

export interface FirmChainVerifierOptions {
  /**
   * The events come from an export, whose key material is replaced by its
   * digest (`{ redacted: "sha256:…" }`). By default they are the log's, where
   * a digest in place of key material is a removal the hashes cannot see.
   */
  exported?: boolean;
  /**
   * Hashes of the firm's most recent events kept besides each stream's head,
   * for anchors naming an event its stream has already moved past (a command
   * committed between the anchor's read of the heads and its append). An
   * anchor naming an older one is checked only for the revision (ADR 0017).
   */
  recentHashes?: number;
}

const DEFAULT_RECENT_HASHES = 4096;

/** What the fold keeps per stream. */
interface StreamHead {
  revision: bigint;
  /** Null for an unchained event (written before chains). */
  hash: string | null;
}

const HASH = /^[0-9a-f]{64}$/;
const REVISION = /^\d{1,20}$/;

/**
 * The incremental verification of one firm: `push` each of its events in log
 * order (as stored: not upcast), then read `result()`. `push` answers false
 * once the history is found broken; later events change nothing.
 */
export class FirmChainVerifier {
  private readonly heads = new Map<string, StreamHead>();
  /** `streamId \u0000 revision` → hash, oldest first; at most `recentLimit`. */
  private readonly recent = new Map<string, string>();
  private readonly recentLimit: number;
  private readonly auditStream: string;
  private readonly exported: boolean;
  private checked = 0;
  private lastPosition: bigint | undefined;
  private unchained = 0;
  private chainingBegan: bigint | undefined;
  private broken: { position: bigint; reason: string } | undefined;

  constructor(
    readonly firmId: string,
    options: FirmChainVerifierOptions = {},
  ) {
    this.recentLimit = options.recentHashes ?? DEFAULT_RECENT_HASHES;
    this.auditStream = streams.audit(firmId);
    this.exported = options.exported ?? false;
  }

  /** Checks the next event of the firm; false once the history is broken. */
  push(event: RecordedEvent): boolean {
    if (this.broken) return false;
    this.checked++;
    const fail = (code: BreakCode, words: string) => {
      this.broken = { position: event.position, reason: `${code}: ${words}` };
      return false;
    };
    const { streamId, revision, position } = event;
    if (this.lastPosition !== undefined && position <= this.lastPosition) {
      return fail('log-order', `position ${position} comes after position ${this.lastPosition}`);
    }
    this.lastPosition = position;
    if (event.corrupt !== undefined) {
      return fail('unreadable-event', `the stored event cannot be read (${event.corrupt})`);
    }
    const metadata = event.metadata as unknown as Record<string, unknown>;
    if (firmOfStream(streamId) !== this.firmId || metadata.firmId !== this.firmId) {
      return fail('foreign-event', `stream ${streamId} or its metadata names another firm`);
    }
    const link = chainLinkOf(metadata);
    if (!link) {
      if ('hash' in metadata || 'previousHash' in metadata) {
        return fail(
          'malformed-chain',
          `the chain fields of ${streamId}@${revision} are not hashes`,
        );
      }
      if (this.chainingBegan !== undefined) {
        return fail(
          'unchained-event',
          `${streamId}@${revision} has no chain link, after chaining began at position ${this.chainingBegan}`,
        );
      }
      // History written before chains: recorded so that its streams' chains can start, not checked.
      this.unchained++;
      this.heads.set(streamId, { revision, hash: null });
      return true;
    }
    this.chainingBegan ??= position;
    const head = this.heads.get(streamId);
    const expected = head ? head.revision + 1n : 0n;
    if (revision > expected) {
      return fail(
        'revision-gap',
        head
          ? `stream ${streamId} goes from revision ${head.revision} to ${revision}: an event is missing`
          : `stream ${streamId} starts at revision ${revision}: its first events are missing`,
      );
    }
    if (revision < expected) {
      return fail(
        'revision-order',
        `stream ${streamId} has revision ${revision} after revision ${head!.revision}: events reordered or inserted`,
      );
    }
    if (link.previousHash !== (head?.hash ?? null)) {
      return fail(
        'chain-link',
        `previousHash of ${streamId}@${revision} is not the hash of the stream's previous event`,
      );
    }
    let hash: string;
    try {
      hash = eventHash(event, link.previousHash);
    } catch {
      hash = '';
    }
    if (hash !== link.hash) {
      return fail('edited', `the content of ${streamId}@${revision} does not match its hash`);
    }
    if (!this.exported && holdsDigestOfKeyMaterial(event)) {
      return fail(
        'key-material-removed',
        `${streamId}@${revision} holds a digest where its key material was`,
      );
    }
    this.heads.set(streamId, { revision, hash });
    this.remember(streamId, revision, hash);
    if (streamId === this.auditStream && event.type === STREAM_HEADS_ANCHORED) {
      return this.checkAnchor(event, fail);
    }
    return true;
  }

  /**
   * Every head the anchor names must still be reached by its stream, with
   * that hash: an event removed at a stream's end, or a stream rewritten
   * consistently, disagrees with the anchor written before.
   */
  private checkAnchor(
    anchor: RecordedEvent,
    fail: (code: BreakCode, words: string) => boolean,
  ): boolean {
    const heads = anchor.data.heads;
    if (!Array.isArray(heads)) return fail('anchor-malformed', 'the anchor lists no heads');
    for (const named of heads) {
      const { streamId, revision, hash } = (named ?? {}) as Record<string, unknown>;
      if (
        typeof streamId !== 'string' ||
        typeof revision !== 'string' ||
        !REVISION.test(revision) ||
        typeof hash !== 'string' ||
        !HASH.test(hash)
      ) {
        return fail('anchor-malformed', 'a head of the anchor is not { streamId, revision, hash }');
      }
      const anchored = BigInt(revision);
      const head = this.heads.get(streamId);
      if (!head || head.revision < anchored) {
        return fail(
          'stream-truncated',
          `the anchor names revision ${anchored} of stream ${streamId}, which the log holds ` +
            `${head ? `only up to revision ${head.revision}` : 'nothing of'}: events were removed`,
        );
      }
      const actual =
        head.revision === anchored ? head.hash : this.recent.get(recentKey(streamId, anchored));
      // Moved on further than the recent window: only its revision could be checked.
      if (actual === undefined) continue;
      if (actual !== hash) {
        return fail(
          'anchor-mismatch',
          `the anchor names another hash for ${streamId}@${anchored} than the event's`,
        );
      }
    }
    return true;
  }

  private remember(streamId: string, revision: bigint, hash: string): void {
    if (this.recentLimit <= 0) return;
    this.recent.set(recentKey(streamId, revision), hash);
    if (this.recent.size > this.recentLimit) {
      this.recent.delete(this.recent.keys().next().value as string);
    }
  }

  /** The verdict on the events pushed so far. */
  result(): ChainVerification {
    const answer: ChainVerification = { ok: !this.broken, eventsChecked: this.checked };
    if (this.broken) {
      answer.firstBrokenPosition = String(this.broken.position);
      answer.reason = this.broken.reason;
    }
    if (this.unchained > 0) {
      const before = this.chainingBegan ?? (this.lastPosition ?? 0n) + 1n;
      answer.unchainedBefore = String(before);
    }
    return answer;
  }
}

const recentKey = (streamId: string, revision: bigint) => `${streamId}\u0000${revision}`;

/** Whether a key-material field of the event (KEY_MATERIAL) holds `{ redacted: "sha256:…" }`. */
function holdsDigestOfKeyMaterial(event: RecordedEvent): boolean {
  for (const path of KEY_MATERIAL[event.type] ?? []) {
    let value: unknown = event.data;
    for (const part of path.split('.')) {
      value =
        typeof value === 'object' && value !== null && !Array.isArray(value)
          ? (value as Record<string, unknown>)[part]
          : undefined;
    }
    if (
      typeof value === 'object' &&
      value !== null &&
      Object.keys(value).length === 1 &&
      typeof (value as { redacted?: unknown }).redacted === 'string'
    ) {
      return true;
    }
  }
  return false;
}

/**
 * Verifies one firm's hash chains and anchors (ADR 0017) over its events in
 * log order, as stored (not upcast), e.g. an event store's firm-filtered read.
 * Reading stops at the first break. Answers `{ ok, eventsChecked,
 * firstBrokenPosition?, reason?, unchainedBefore? }` (positions as decimal
 * strings). Throws only what the iterable throws.
 */
export async function verifyFirmChains(
  events: AsyncIterable<RecordedEvent> | Iterable<RecordedEvent>,
  firmId: string,
  options: FirmChainVerifierOptions = {},
): Promise<ChainVerification> {
  const verifier = new FirmChainVerifier(firmId, options);
  for await (const event of events) {
    if (!verifier.push(event)) break;
  }
  return verifier.result();
}
