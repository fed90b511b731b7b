import type { EventStore } from '../event-store/event-store.port';
import { ExportFilters, filterMatcher } from './audit-query';
import {
  exportedHashOf,
  exportLineOf,
  ExportSummary,
  hashOfCorruptLine,
  isCorruptLine,
} from './export-format';

/** Events read from the store per page: a page's lines leave as one chunk. */
export const EXPORT_PAGE_SIZE = 1000;

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
 * A firm's audit export (docs/audit.md "The export"), as NDJSON text in
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
): AsyncGenerator<string> {
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
  while (after < asOfPosition) {
    const page = await store.readFirm(firmId, { after, maxCount, types });
    if (page.through === after) break;
    let text = '';
    for (const event of page.events) {
      if (event.position > asOfPosition) break;
      read++;
      if (!matches(event)) continue;
      const line = exportLineOf(event);
      summary.add(line, isCorruptLine(line) ? hashOfCorruptLine(line) : exportedHashOf(line));
      text += `${JSON.stringify(line)}\n`;
    }
    after = page.through;
    options.onProgress?.({ read, exported: summary.events, position: after, asOfPosition });
    if (text.length > 0) yield text;
  }
  yield* summary.trailerText();
}
