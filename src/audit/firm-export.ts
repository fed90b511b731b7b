import type { EventStore } from '../event-store/event-store.port';
import { ExportFilters, filterMatcher } from './audit-query';
import {
  exportedHashOf,
  exportLineOf,
  exportLineText,
  ExportSummary,
  hashOfCorruptLine,
  isCorruptLine,
} from './export-format';

/**
 * Events read from the store per page: a page's lines leave as one chunk. Larger
 * pages gain little speed and cost peak memory (bench/audit.bench.ts).
 */
export const EXPORT_PAGE_SIZE = 500;

export interface ExportProgress {
  /** Events of the firm read so far (exported or filtered out). */
  read: number;
  exported: number;
  /** The log position read up to. */
  position: bigint;
  /** The position the export reads up to (the log's head when it began). */
  asOfPosition: bigint;
}

export interface FirmExportOptions {
  filters: ExportFilters;
  /** ISO time the export begins (the injected clock). */
  exportedAt: string;
  pageSize?: number;
  onProgress?: (progress: ExportProgress) => void;
}

/**
 * A firm's audit export (docs/audit.md, "Exporting a firm's events"), as NDJSON in UTF-8
 * chunks: one line per event of the firm matching the filters, in log order,
 * then the trailer line. Lazy: a page is read from the store only when the
 * consumer asks for the next chunk, so memory stays flat (one page, and one
 * head per stream for the trailer) and the first lines leave before the last
 * events are read. The export reads up to the log's head when it begins
 * (`asOfPosition`): events appended meanwhile belong to the next export.
 *
 * A store failure is thrown from the generator: the export then ends without
 * its trailer, which offline verification reports as cut short.
 */
export async function* exportFirm(
  store: EventStore,
  firmId: string,
  options: FirmExportOptions,
): AsyncGenerator<Buffer> {
  const asOfPosition = await store.headPosition();
  const summary = new ExportSummary({
    firmId,
    filters: options.filters,
    exportedAt: options.exportedAt,
    asOfPosition: asOfPosition.toString(),
  });
  const matches = filterMatcher(options.filters);
  const maxCount = options.pageSize ?? EXPORT_PAGE_SIZE;
  const types = options.filters.types ?? undefined;
  let read = 0;
  let after = 0n;
  const page = new PageWriter();
  while (after < asOfPosition) {
    const { events, through } = await store.readFirm(firmId, { after, maxCount, types });
    if (through === after) break;
    for (const event of events) {
      if (event.position > asOfPosition) break;
      read++;
      if (!matches(event)) continue;
      const line = exportLineOf(event);
      summary.add(line, isCorruptLine(line) ? hashOfCorruptLine(line) : exportedHashOf(line));
      page.line(exportLineText(event, line));
    }
    after = through;
    options.onProgress?.({ read, exported: summary.events, position: after, asOfPosition });
    if (page.length > 0) yield page.take();
  }
  for (const text of summary.trailerText()) yield Buffer.from(text);
}

/**
 * A page of lines encoded as UTF-8 into one buffer: written line by line into
 * a scratch buffer, then copied out at its exact size. Joining a thousand
 * strings and encoding the result cost ten times as much (bench/audit.bench.ts).
 */
class PageWriter {
  private scratch = Buffer.allocUnsafe(1 << 20);
  length = 0;

  line(text: string): void {
    // A UTF-16 code unit takes at most 3 bytes in UTF-8.
    const room = text.length * 3 + 1;
    if (this.length + room > this.scratch.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.scratch.length * 2, this.length + room));
      this.scratch.copy(grown, 0, 0, this.length);
      this.scratch = grown;
    }
    this.length += this.scratch.write(text, this.length);
    this.scratch[this.length++] = 0x0a;
  }

  /** The lines written since the last take, as a buffer of their own. */
  take(): Buffer {
    // A copy (memcpy): Buffer.from(a buffer) copies byte by byte.
    const page = Buffer.allocUnsafe(this.length);
    this.scratch.copy(page, 0, 0, this.length);
    this.length = 0;
    return page;
  }
}
