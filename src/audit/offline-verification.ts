import { open } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { chainLinkOf } from '../shared/event-hash';
import { ExportFilters, filterMatcher, NO_FILTERS } from './audit-query';
import {
  ExportedCorruptEvent,
  ExportedEvent,
  ExportLine,
  ExportSummary,
  ExportTrailer,
  firmOfStream,
  hashOfCorruptLine,
  hashOfLine,
  isCorruptLine,
  TrailerHeader,
} from './export-format';

/*
 * Verifying a saved export with nothing but the file (docs/audit.md,
 * "Verifying an export offline"): no service, no database. Every line must
 * be exactly as the exporter writes it, every event's content must give its
 * hash, consecutive events of a stream must link, the log order must hold,
 * the lines must be the firm's and match the export's filters, and the
 * trailer must count, digest and head exactly these lines. So any byte
 * changed, any line removed, inserted or moved fails it.
 */

/** The answer of a verification, as the online one (API.md "Audit"). */
export interface VerificationResult {
  ok: boolean;
  /** Event lines read (those the store could not read included). */
  eventsChecked: number;
  /** The position of the first line found broken, when a line can be named. */
  firstBrokenPosition?: string;
  reason?: string;
}

const DIGITS = /^(0|[1-9]\d{0,19})$/;
const EVENT_KEYS = ['position', 'streamId', 'revision', 'type', 'data', 'metadata'];
const CORRUPT_KEYS = ['position', 'streamId', 'revision', 'type', 'corrupt'];
const TRAILER_KEYS = [
  'firmId',
  'filters',
  'exportedAt',
  'asOfPosition',
  'events',
  'corrupt',
  'firstPosition',
  'lastPosition',
  'digest',
  'heads',
];

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const hasKeys = (value: Record<string, unknown>, keys: readonly string[]) =>
  isDeepStrictEqual(Object.keys(value), keys);

/**
 * Checks the lines of an export, fed one at a time in file order. The trailer
 * (the export's last line) is given first, read ahead: the digest covers its
 * header, and the lines are checked against its firm and filters as they come.
 */
export class ExportVerifier {
  private readonly trailer: ExportTrailer | undefined;
  private readonly header: TrailerHeader | undefined;
  private readonly summary: ExportSummary;
  private readonly matches: ReturnType<typeof filterMatcher>;
  /** Revisions of a stream must follow one another: no type or user filter left events out. */
  private readonly consecutive: boolean;
  /** ...and start at 0: no time filter started the export late either. */
  private readonly fromStart: boolean;
  /** Streams whose last line so far is an event without chain fields (written before the chain). */
  private readonly unchainedHeads = new Set<string>();
  private lastPosition = 0n;
  private lineNumber = 0;
  private trailerSeen = false;
  private started = false;
  private eventsChecked = 0;
  private broken: { position?: string; reason: string } | undefined;

  /** `trailerText`: the export's last line, undefined when the file has none. */
  constructor(private readonly trailerText: string | undefined) {
    this.trailer = trailerOf(trailerText);
    this.header = this.trailer && headerOf(this.trailer);
    const filters = this.header?.filters ?? NO_FILTERS;
    this.summary = new ExportSummary(
      this.header ?? { firmId: '', filters, exportedAt: '', asOfPosition: '0' },
    );
    this.matches = filterMatcher(filters);
    this.consecutive = filters.types === null && filters.userId === null;
    this.fromStart = this.consecutive && filters.from === null;
  }

  /** The next line of the file, without its newline. */
  line(text: string): void {
    this.lineNumber++;
    // What npm prints before a script's own output when run without -s
    // (`> mfa-service@0.1.0 audit`, `> node …`, a blank line) is not the export's.
    if (!this.started && (text === '' || text.startsWith('> '))) return;
    this.started = true;
    const at = `line ${this.lineNumber}`;
    if (this.trailerSeen) return this.fail(undefined, `${at} follows the trailer`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return this.fail(positionHint(text), `${at} is not JSON`);
    }
    if (isObject(parsed) && 'trailer' in parsed) {
      this.trailerSeen = true;
      if (text !== this.trailerText) this.fail(undefined, `${at} is a trailer before the end`);
      return;
    }
    this.eventsChecked++;
    // Whitespace, key order, escapes, number forms: the exporter writes one form only.
    if (JSON.stringify(parsed) !== text) {
      return this.fail(
        positionHint(text),
        `${at} is not in the form the export writes: changed since, or its event was stored by hand`,
      );
    }
    const line = lineOf(parsed);
    if (!line) return this.fail(positionHint(text), `${at} is not an event line of an export`);
    this.check(line, at);
  }

  private check(line: ExportLine, at: string): void {
    const position = BigInt(line.position);
    if (position <= this.lastPosition) {
      this.fail(line.position, `${at} is out of log order (position ${line.position})`);
    }
    this.lastPosition = position > this.lastPosition ? position : this.lastPosition;
    this.checkFirmAndFilters(line, at);
    if (isCorruptLine(line)) {
      this.checkCorrupt(line, at);
      return;
    }
    const hash = hashOfLine(line);
    this.checkChain(line, hash, at);
    this.summary.add(line, hash);
  }

  private checkFirmAndFilters(line: ExportLine, at: string): void {
    if (!this.header) return;
    const firmId = this.header.firmId;
    const claimed = isCorruptLine(line) ? undefined : line.metadata.firmId;
    if (firmOfStream(line.streamId) !== firmId || (claimed !== undefined && claimed !== firmId)) {
      this.fail(line.position, `${at} is not an event of firm ${firmId}`);
    } else if (!this.matches(line)) {
      this.fail(line.position, `${at} does not match the export's filters`);
    }
  }

  private checkCorrupt(line: ExportedCorruptEvent, at: string): void {
    this.summary.add(line, hashOfCorruptLine(line));
    this.fail(
      line.position,
      `${at}: the store could not read this event when it was exported (${line.corrupt}), so its hash cannot be checked`,
    );
    this.unchainedHeads.delete(line.streamId);
  }

  private checkChain(line: ExportedEvent, hash: string, at: string): void {
    const fail = (reason: string) => this.fail(line.position, `${at}: ${reason}`);
    const hasChainFields = 'hash' in line.metadata || 'previousHash' in line.metadata;
    const link = chainLinkOf(line.metadata);
    if (hasChainFields && !link) fail('its hash or previous hash is malformed');
    else if (link && link.hash !== hash) fail('its content does not give its hash');
    const revision = BigInt(line.revision);
    // The stream's previous line, as the summary holds it (hash null: unreadable).
    const before = this.summary.headOf(line.streamId);
    const beforeChained = !this.unchainedHeads.has(line.streamId);
    if (link) this.unchainedHeads.delete(line.streamId);
    else this.unchainedHeads.add(line.streamId);
    if (!before) {
      if (revision !== 0n && this.fromStart) {
        fail(`the first events of stream ${line.streamId} are missing`);
      } else if (revision === 0n && link && link.previousHash !== null) {
        fail('the first event of its stream names a predecessor');
      }
      return;
    }
    if (revision <= before.revision) return fail('out of order in its stream');
    if (revision !== before.revision + 1n) {
      if (this.consecutive) fail(`an event of stream ${line.streamId} is missing before it`);
      return;
    }
    if (before.hash === null) return;
    if (link) {
      // The first chained event of a stream of older, unchained events may start a chain.
      const starts = !beforeChained && link.previousHash === null;
      if (link.previousHash !== before.hash && !starts) {
        fail('it does not link to the previous event of its stream');
      }
    } else if (beforeChained) {
      fail('it has no hash, after chained events of its stream');
    }
  }

  private fail(position: string | undefined, reason: string): void {
    this.broken ??= { ...(position === undefined ? {} : { position }), reason };
  }

  /** The verdict, once every line was given. `endsWithNewline`: the file's last byte is one. */
  finish(endsWithNewline = true): VerificationResult {
    if (!this.trailerSeen) this.fail(undefined, 'the export has no trailer: it was cut short');
    else if (!endsWithNewline) this.fail(undefined, 'the trailer line does not end the file');
    else this.checkTrailer();
    const result: VerificationResult = { ok: !this.broken, eventsChecked: this.eventsChecked };
    if (this.broken?.position !== undefined) result.firstBrokenPosition = this.broken.position;
    if (this.broken) result.reason = this.broken.reason;
    return result;
  }

  private checkTrailer(): void {
    const trailer = this.trailer;
    if (!trailer || !this.header) return this.fail(undefined, 'the trailer is malformed');
    const expected = this.summary.trailerWithoutHeads();
    for (const field of ['events', 'corrupt', 'firstPosition', 'lastPosition'] as const) {
      if (trailer[field] !== expected[field]) {
        return this.fail(
          undefined,
          `the trailer says ${field} ${String(trailer[field])}, the lines give ${String(expected[field])}`,
        );
      }
    }
    if (trailer.digest !== expected.digest) {
      return this.fail(undefined, 'the trailer digest does not match the lines');
    }
    if (
      expected.lastPosition !== null &&
      BigInt(expected.lastPosition) > BigInt(trailer.asOfPosition)
    ) {
      return this.fail(expected.lastPosition, 'a line is past the position the export read up to');
    }
    let index = 0;
    for (const head of this.summary.sortedHeads()) {
      if (!isDeepStrictEqual(trailer.heads[index], head)) {
        return this.fail(undefined, `the trailer's head of stream ${head.streamId} does not match`);
      }
      index++;
    }
    if (index !== trailer.heads.length) this.fail(undefined, 'the trailer names heads of no line');
  }
}

/** The event line a parsed value is, if it has exactly an export line's fields. */
function lineOf(value: unknown): ExportLine | undefined {
  if (!isObject(value)) return undefined;
  const common =
    typeof value.position === 'string' &&
    DIGITS.test(value.position) &&
    value.position !== '0' &&
    typeof value.streamId === 'string' &&
    typeof value.revision === 'string' &&
    DIGITS.test(value.revision) &&
    typeof value.type === 'string';
  if (!common) return undefined;
  if (hasKeys(value, EVENT_KEYS) && isObject(value.data) && isObject(value.metadata)) {
    return value as unknown as ExportedEvent;
  }
  if (hasKeys(value, CORRUPT_KEYS) && typeof value.corrupt === 'string') {
    return value as unknown as ExportedCorruptEvent;
  }
  return undefined;
}

/** The trailer of a trailer line, if it has exactly the trailer's fields and types. */
function trailerOf(text: string | undefined): ExportTrailer | undefined {
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || !hasKeys(parsed, ['trailer']) || JSON.stringify(parsed) !== text) {
    return undefined;
  }
  const trailer = parsed.trailer;
  if (!isObject(trailer) || !hasKeys(trailer, TRAILER_KEYS)) return undefined;
  const position = (value: unknown) => typeof value === 'string' && DIGITS.test(value);
  const optionalPosition = (value: unknown) => value === null || position(value);
  const ok =
    typeof trailer.firmId === 'string' &&
    filtersOf(trailer.filters) !== undefined &&
    typeof trailer.exportedAt === 'string' &&
    position(trailer.asOfPosition) &&
    Number.isSafeInteger(trailer.events) &&
    Number.isSafeInteger(trailer.corrupt) &&
    optionalPosition(trailer.firstPosition) &&
    optionalPosition(trailer.lastPosition) &&
    typeof trailer.digest === 'string' &&
    Array.isArray(trailer.heads);
  return ok ? (trailer as unknown as ExportTrailer) : undefined;
}

function filtersOf(value: unknown): ExportFilters | undefined {
  if (!isObject(value) || !hasKeys(value, ['from', 'to', 'types', 'userId'])) return undefined;
  const time = (v: unknown) =>
    v === null || (typeof v === 'string' && !Number.isNaN(Date.parse(v)));
  const ok =
    time(value.from) &&
    time(value.to) &&
    (value.types === null ||
      (Array.isArray(value.types) && value.types.every((t) => typeof t === 'string'))) &&
    (value.userId === null || typeof value.userId === 'string');
  return ok ? (value as unknown as ExportFilters) : undefined;
}

function headerOf(trailer: ExportTrailer): TrailerHeader {
  const { firmId, filters, exportedAt, asOfPosition } = trailer;
  return { firmId, filters, exportedAt, asOfPosition };
}

/** The position a damaged line still shows, if any: to name where the damage is. */
function positionHint(text: string): string | undefined {
  return /^\{"position":"(\d{1,20})"/.exec(text)?.[1];
}

const NEWLINE = 0x0a;

/**
 * Feeds bytes to a verifier line by line: split on `\n` only and decoded as
 * strict UTF-8, so a changed line ending or an invalid byte is a changed line
 * too. Answers whether the last byte was a newline.
 */
async function feedLines(
  verifier: ExportVerifier,
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
): Promise<boolean> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const decode = (bytes: Buffer): string => {
    try {
      return decoder.decode(bytes);
    } catch {
      // Never valid JSON: reported as such, with no position to name.
      return '\u0000';
    }
  };
  let pending: Buffer[] = [];
  let endsWithNewline = true;
  for await (const bytes of chunks) {
    if (bytes.length === 0) continue;
    let start = 0;
    for (let index = bytes.indexOf(NEWLINE); index !== -1; index = bytes.indexOf(NEWLINE, start)) {
      pending.push(bytes.subarray(start, index));
      verifier.line(decode(Buffer.concat(pending)));
      pending = [];
      start = index + 1;
    }
    if (start < bytes.length) pending.push(Buffer.from(bytes.subarray(start)));
    endsWithNewline = start === bytes.length;
  }
  if (pending.length > 0) verifier.line(decode(Buffer.concat(pending)));
  return endsWithNewline;
}

/** The text of the bytes' last line (without its final newline), undefined if not UTF-8. */
function lastLineOf(bytes: Buffer): string | undefined {
  if (bytes.length === 0) return undefined;
  const end = bytes[bytes.length - 1] === NEWLINE ? bytes.length - 1 : bytes.length;
  const start = bytes.lastIndexOf(NEWLINE, end - 1) + 1;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start, end));
  } catch {
    return undefined;
  }
}

/** Verifies an export held in memory (see verifyExportFile). */
export async function verifyExport(bytes: Buffer): Promise<VerificationResult> {
  const verifier = new ExportVerifier(lastLineOf(bytes));
  return verifier.finish(await feedLines(verifier, [bytes]));
}

/**
 * Verifies a saved export file: reads its last line (the trailer) first,
 * backwards from the end, then every line in order, a megabyte at a time.
 * Throws only when the file cannot be read.
 */
export async function verifyExportFile(
  path: string,
  options: { onProgress?: (bytesRead: number, size: number) => void } = {},
): Promise<VerificationResult> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const verifier = new ExportVerifier(await lastLine(handle, size));
    const stream = handle.createReadStream({ start: 0, autoClose: false, highWaterMark: 1 << 20 });
    let bytesRead = 0;
    const counted = async function* () {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        bytesRead += chunk.length;
        options.onProgress?.(bytesRead, size);
        yield chunk;
      }
    };
    return verifier.finish(await feedLines(verifier, counted()));
  } finally {
    await handle.close();
  }
}

/** The file's last line, read backwards from its end (see lastLineOf). */
async function lastLine(
  handle: Awaited<ReturnType<typeof open>>,
  size: number,
): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let position = size;
  while (position > 0) {
    const length = Math.min(64 * 1024, position);
    position -= length;
    const chunk = Buffer.alloc(length);
    await handle.read(chunk, 0, length, position);
    chunks.unshift(chunk);
    // A newline before the last byte starts the last line.
    const newline = chunk
      .subarray(0, position + length === size ? length - 1 : length)
      .lastIndexOf(NEWLINE);
    if (newline !== -1) break;
  }
  return lastLineOf(Buffer.concat(chunks));
}
