import { createHash, type Hash } from 'node:crypto';
import type {
  EventMetadata,
  FirmEvent,
  JsonObject,
  JsonValue,
  RecordedEvent,
} from '../event-store/event-store.port';
import {
  canonicalJson,
  chainLinkOf,
  eventHash,
  KEY_MATERIAL,
  redactKeyMaterial,
  sha256,
} from '../shared/event-hash';
import type { ExportFilters } from './audit-query';

/*
 * The audit export's format (docs/audit.md, "Exporting a firm's events", "The trailer"): NDJSON, one event
 * a line in log order, then one trailer line that commits to every line
 * before it. The exporter (firm-export.ts) and the offline verification
 * (offline-verification.ts) both build their summary here, so they cannot
 * count, hash or order differently.
 */

/** One exported event: as stored, with its key material replaced by digests. */
export interface ExportedEvent {
  /** The global log position, decimal. */
  position: string;
  streamId: string;
  /** 0-based index in its stream, decimal. */
  revision: string;
  type: string;
  data: JsonObject;
  /** As stored, `hash` and `previousHash` included when the event is chained. */
  metadata: JsonObject;
}

/** An event the store could not read: where it is and why, never what it holds. */
export interface ExportedCorruptEvent {
  position: string;
  streamId: string;
  revision: string;
  type: string;
  /** The store's reason (it never quotes the stored bytes). */
  corrupt: string;
}

export type ExportLine = ExportedEvent | ExportedCorruptEvent;

/** The last exported event of a stream. */
export interface StreamHead {
  streamId: string;
  revision: string;
  /** Its hash; null when it is an event the store could not read. */
  hash: string | null;
}

/** What the trailer says of the export beside the lines it summarises. */
export interface TrailerHeader {
  firmId: string;
  filters: ExportFilters;
  /** ISO time the export began. */
  exportedAt: string;
  /**
   * The log position the export read up to: every event of the firm that
   * matches the filters, at or before it, is in the export. Decimal.
   */
  asOfPosition: string;
}

export interface ExportTrailer extends TrailerHeader {
  /** Lines before the trailer: events, corrupt ones included. */
  events: number;
  /** Of which the store could not read. */
  corrupt: number;
  firstPosition: string | null;
  lastPosition: string | null;
  /**
   * Hex SHA-256 over the RFC 8785 form of the header (firmId, filters,
   * exportedAt, asOfPosition) and a newline, then for every line in order
   * `<position> <hash>` and a newline, where the hash is the event's hash
   * (`eventHash`) or, for an unreadable event, SHA-256 of its line's RFC 8785
   * form. Every byte of the export is thus covered: each line by its hash and
   * position, the header by the digest, the rest of the trailer by recounting.
   */
  digest: string;
  /** Per stream, its last exported event; sorted by stream id. */
  heads: StreamHead[];
}

export function isCorruptLine(line: ExportLine): line is ExportedCorruptEvent {
  return 'corrupt' in line;
}

/** The export's line for a stored event: key material replaced by digests (KEY_MATERIAL). */
export function exportLineOf(event: RecordedEvent): ExportLine {
  const position = event.position.toString();
  const revision = event.revision.toString();
  if (event.corrupt !== undefined) {
    return {
      position,
      streamId: event.streamId,
      revision,
      type: event.type,
      corrupt: event.corrupt,
    };
  }
  return {
    position,
    streamId: event.streamId,
    revision,
    type: event.type,
    data: holdsKeyMaterial(event.type, event.data)
      ? redactKeyMaterial(event.type, event.data)
      : event.data,
    metadata: event.metadata as unknown as JsonObject,
  };
}

/**
 * The line's text: `JSON.stringify(line)`, taking the stored JSON text of the
 * event's data and metadata as it is when the store kept it (FirmEvent) and
 * nothing was redacted, which spares serializing them again (half the cost of
 * an export).
 */
export function exportLineText(event: FirmEvent, line: ExportLine): string {
  const stored = event.storedJson;
  if (!stored || isCorruptLine(line) || line.data !== event.data || breaksLine(stored)) {
    return JSON.stringify(line);
  }
  return (
    `{"position":"${line.position}","streamId":${JSON.stringify(line.streamId)}` +
    `,"revision":"${line.revision}","type":${JSON.stringify(line.type)}` +
    `,"data":${stored.data},"metadata":${stored.metadata}}`
  );
}

/** Stored text with a line break (JSON written by hand, pretty-printed) would split the NDJSON line. */
const breaksLine = (stored: { data: string; metadata: string }) =>
  /[\r\n]/.test(stored.data) || /[\r\n]/.test(stored.metadata);

/**
 * Whether any key-material field of the type is present in `data`: most
 * events of those types hold none (a TOTP factor's confirmation has no public
 * key), and redacting copies the whole data.
 */
function holdsKeyMaterial(type: string, data: JsonObject): boolean {
  const paths = KEY_MATERIAL[type];
  if (!paths) return false;
  return paths.some((path) => {
    let value: JsonValue | undefined = data;
    for (const part of path.split('.')) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
      value = value[part];
    }
    return value !== undefined;
  });
}

/**
 * The hash of an exported event, computed from the line alone: `eventHash`
 * of its content and its `metadata.previousHash` (null when it has none: an
 * event written before the chain, whose hash is then still well defined).
 */
export function hashOfLine(line: ExportedEvent): string {
  const previous = line.metadata.previousHash;
  return eventHash(
    {
      streamId: line.streamId,
      revision: BigInt(line.revision),
      type: line.type,
      data: line.data,
      metadata: line.metadata as unknown as EventMetadata,
    },
    typeof previous === 'string' ? previous : null,
  );
}

/**
 * The hash the exporter commits to for an event: the chain's own
 * `metadata.hash` when the event carries a well-formed one, else recomputed.
 * For an intact chained event the two are equal; for a tampered one the
 * export carries what the store holds, and verifying the export shows the
 * mismatch at that line, as verifying the store would.
 */
export function exportedHashOf(line: ExportedEvent): string {
  return chainLinkOf(line.metadata)?.hash ?? hashOfLine(line);
}

/** What stands for an unreadable event in the digest: SHA-256 of its line's RFC 8785 form. */
export function hashOfCorruptLine(line: ExportedCorruptEvent): string {
  return sha256(canonicalJson(line));
}

/** Digest entries gathered before they are hashed: one hash update per page, not per line. */
const DIGEST_BATCH = 64 * 1024;

/**
 * Counts, digest and heads of the lines of an export, added in order; the
 * exporter and the offline verification each keep one. Memory: one entry
 * per stream (its head), about 120 bytes each.
 */
export class ExportSummary {
  private readonly digest: Hash = createHash('sha256');
  private pendingDigest = '';
  /** Per stream, its slot in the arrays below. */
  private readonly slots = new Map<string, number>();
  /** The head's revision: a number while it is a safe integer (always, in practice), else its text. */
  private readonly revisions: Array<number | string> = [];
  /**
   * The heads' hashes as bytes, 32 a slot: a hash string kept per stream cost
   * three times as much, and a firm may have hundreds of thousands of streams.
   */
  private hashes = Buffer.alloc(32 * 1024);
  /** Slots whose head is an event the store could not read (no hash). */
  private readonly unreadable = new Set<number>();
  events = 0;
  corrupt = 0;
  firstPosition: string | null = null;
  lastPosition: string | null = null;

  constructor(readonly header: TrailerHeader) {
    this.digest.update(`${canonicalJson(header)}\n`);
  }

  /** Adds the next line, with its hash (`exportedHashOf`, or `hashOfCorruptLine` for a corrupt one). */
  add(line: ExportLine, hash: string): void {
    this.events++;
    const corrupt = isCorruptLine(line);
    if (corrupt) this.corrupt++;
    this.firstPosition ??= line.position;
    this.lastPosition = line.position;
    this.pendingDigest += `${line.position} ${hash}\n`;
    if (this.pendingDigest.length >= DIGEST_BATCH) this.flushDigest();
    let slot = this.slots.get(line.streamId);
    if (slot === undefined) {
      slot = this.revisions.length;
      this.slots.set(line.streamId, slot);
      if ((slot + 1) * 32 > this.hashes.length) {
        const grown = Buffer.alloc(this.hashes.length * 2);
        this.hashes.copy(grown);
        this.hashes = grown;
      }
    }
    const revision = Number(line.revision);
    this.revisions[slot] = Number.isSafeInteger(revision) ? revision : line.revision;
    if (corrupt) this.unreadable.add(slot);
    else {
      if (this.unreadable.size > 0) this.unreadable.delete(slot);
      writeHex(this.hashes, slot * 32, hash);
    }
  }

  /** The last line added of a stream, if any: its revision and hash (null: unreadable). */
  headOf(streamId: string): { revision: bigint; hash: string | null } | undefined {
    const slot = this.slots.get(streamId);
    if (slot === undefined) return undefined;
    return {
      revision: BigInt(this.revisions[slot]),
      hash: this.unreadable.has(slot)
        ? null
        : this.hashes.toString('hex', slot * 32, slot * 32 + 32),
    };
  }

  private flushDigest(): void {
    this.digest.update(this.pendingDigest);
    this.pendingDigest = '';
  }

  /** The trailer, heads aside (they are written or compared one by one). */
  trailerWithoutHeads(): Omit<ExportTrailer, 'heads'> {
    this.flushDigest();
    return {
      ...this.header,
      events: this.events,
      corrupt: this.corrupt,
      firstPosition: this.firstPosition,
      lastPosition: this.lastPosition,
      digest: this.digest.copy().digest('hex'),
    };
  }

  /** The heads, sorted by stream id (UTF-16 code units), one at a time. */
  *sortedHeads(): Generator<StreamHead> {
    const streams = [...this.slots.keys()].sort();
    for (const streamId of streams) {
      const slot = this.slots.get(streamId)!;
      yield {
        streamId,
        revision: String(this.revisions[slot]),
        hash: this.unreadable.has(slot)
          ? null
          : this.hashes.toString('hex', slot * 32, slot * 32 + 32),
      };
    }
  }

  /**
   * The trailer line (newline included) in pieces of about `chunkSize`
   * characters: the same text as `JSON.stringify({ trailer })` with the heads
   * last, without holding a firm's whole list of heads as one string.
   */
  *trailerText(chunkSize = 64 * 1024): Generator<string> {
    const head = JSON.stringify({ trailer: this.trailerWithoutHeads() });
    let chunk = `${head.slice(0, -2)},"heads":[`;
    let first = true;
    for (const streamHead of this.sortedHeads()) {
      chunk += (first ? '' : ',') + JSON.stringify(streamHead);
      first = false;
      if (chunk.length >= chunkSize) {
        yield chunk;
        chunk = '';
      }
    }
    yield `${chunk}]}}\n`;
  }
}

const HEX_VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) HEX_VALUES['0123456789abcdef'.charCodeAt(i)] = i;

/**
 * Writes a 64-digit lower-case hex hash as 32 bytes; a character that is not
 * one counts as 0 (hashes reaching here are well formed: `chainLinkOf`, or
 * computed). A loop in JavaScript: `Buffer.write(…, 'hex')` cost twice as much
 * per call.
 */
function writeHex(target: Buffer, offset: number, hex: string): void {
  for (let i = 0; i < 32; i++) {
    const high = HEX_VALUES[hex.charCodeAt(2 * i) & 0x7f];
    const low = HEX_VALUES[hex.charCodeAt(2 * i + 1) & 0x7f];
    target[offset + i] = ((high < 0 ? 0 : high) << 4) | (low < 0 ? 0 : low);
  }
}

const FIRM_STREAM = /^[a-z]+-([^/]+)(?:\/|$)/;

/** The firm a stream's name carries (`category-{firmId}[/{id}]`), as readFirm selects streams. */
export function firmOfStream(streamId: string): string | undefined {
  return FIRM_STREAM.exec(streamId)?.[1];
}
