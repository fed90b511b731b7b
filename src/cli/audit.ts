import { SingleBar } from 'cli-progress';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { parseExportFilters } from '../audit/audit-query';
import { parseInstant } from '../shared/instant';
import { exportFirm, ExportProgress } from '../audit/firm-export';
import { verifyExportFile } from '../audit/offline-verification';
import { verifyFirmChains } from '../audit/chain-verification';
import { firmEvents } from '../audit/firm-events';
import { stateAsOf } from '../audit/state-as-of';
import { AppConfig } from '../config/config';
import type { EventStore } from '../event-store/event-store.port';
import { SqliteEventStore } from '../event-store/sqlite-event-store';
import { openReadModelStore } from '../read-model/open-read-model-store';
import { isValidId } from '../shared/ids';
import { cliConfiguration, runCli, UsageError } from './run-cli';

const USAGE = `Auditors' commands (docs/audit.md). export, state and verify --firm read the
configured stores (DATA_DIR, EVENTSTORE_URL, MONGODB_URL), whether the service runs or
not; verify --file needs nothing but the file.

usage: npm run audit -- COMMAND [OPTIONS]

  export --firm ID [--from TIME] [--to TIME] [--type TYPE[,TYPE...]] [--user ID]
        the firm's events in log order as NDJSON on stdout, then the trailer line:
        npm run -s audit -- export --firm acme > acme.ndjson
        --from: occurred at or after TIME; --to: before TIME; --type: of these event
        types; --user: whose data.userId is ID
  state --firm ID --as-of TIME
        the firm's dashboards (usage, counters, enrolled users) as they stood at TIME,
        rebuilt from the log, as JSON on stdout
  verify --firm ID
        check the firm's stored history against its hash chains and anchors (ADR 0017);
        prints { ok, eventsChecked, firstBrokenPosition?, reason?, unchainedBefore? }
  verify --file FILE
        check a saved export offline; prints { ok, eventsChecked, firstBrokenPosition?,
        reason? } as JSON on stdout

TIME is ISO 8601 with its offset (2026-01-15T09:30:00Z, 2026-01-15T10:30:00+01:00)
or a date (2026-01-15, midnight UTC). A progress bar goes to stderr when it is a
terminal. Exit status: 0 done (verify: the history or export verifies), 1 it does not
verify or the command failed, 2 a command, option or configuration error.`;

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  firm: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  type: { type: 'string' },
  user: { type: 'string' },
  'as-of': { type: 'string' },
  file: { type: 'string' },
} as const;

type Values = ReturnType<
  typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>
>['values'];

/** Which options each command takes, and which it requires. */
const COMMANDS: Record<string, { allowed: Array<keyof Values>; required: Array<keyof Values> }> = {
  export: { allowed: ['firm', 'from', 'to', 'type', 'user'], required: ['firm'] },
  state: { allowed: ['firm', 'as-of'], required: ['firm', 'as-of'] },
  verify: { allowed: ['file', 'firm'], required: [] },
};

async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [command, ...extra] = positionals;
  const spec = COMMANDS[command ?? ''];
  if (!spec) {
    throw new UsageError(
      command === undefined ? 'a command is required' : `unknown command ${command}`,
    );
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}`);
  for (const name of Object.keys(values) as Array<keyof Values>) {
    if (name !== 'help' && !spec.allowed.includes(name)) {
      throw new UsageError(`${command} takes no --${name}`);
    }
  }
  for (const name of spec.required) {
    if (values[name] === undefined) throw new UsageError(`${command} needs --${name}`);
  }
  if (values.firm !== undefined && !isValidId(values.firm)) {
    throw new UsageError('--firm must be 1-128 characters of A-Z a-z 0-9 . _ : -');
  }
  switch (command) {
    case 'export':
      return exportCommand(values.firm!, values);
    case 'state':
      return stateCommand(values.firm!, values['as-of']!);
    default:
      return verifyCommand(values);
  }
}

async function exportCommand(firmId: string, values: Values): Promise<number> {
  const parsed = parseExportFilters({
    from: values.from,
    to: values.to,
    type: values.type,
    userId: values.user,
  });
  if ('errors' in parsed) {
    const { field, message } = parsed.errors[0];
    throw new UsageError(`--${field === 'userId' ? 'user' : field} ${message}`);
  }
  const config = cliConfiguration();
  const eventStore = await openEventStore(config);
  const bar = progressBar('events');
  try {
    const lines = exportFirm(eventStore, firmId, {
      filters: parsed.filters,
      exportedAt: new Date().toISOString(),
      onProgress: (progress: ExportProgress) =>
        bar.update(Number(progress.position), Number(progress.asOfPosition), {
          done: progress.exported,
        }),
    });
    // Back-pressure: a page is read only when stdout has taken the previous one.
    await pipeline(Readable.from(lines, { highWaterMark: 1 }), process.stdout);
    return 0;
  } finally {
    bar.stop();
    await eventStore.close();
  }
}

async function stateCommand(firmId: string, asOfText: string): Promise<number> {
  const asOf = parseInstant(asOfText);
  if (asOf === undefined) {
    throw new UsageError(
      '--as-of must be an ISO 8601 date-time with its offset (2026-01-15T09:30:00Z) or a date (2026-01-15)',
    );
  }
  if (asOf > Date.now()) throw new UsageError('--as-of must not be in the future');
  const config = cliConfiguration();
  const eventStore = await openEventStore(config);
  const readModels = await openReadModelStore(config);
  try {
    // An operator's skips hold here as in the live read models.
    const skips = new Map<string, Set<bigint>>();
    for (const skip of await readModels.skips()) {
      skips.set(skip.consumer, (skips.get(skip.consumer) ?? new Set()).add(skip.position));
    }
    const state = await stateAsOf(eventStore, firmId, asOf, { skips });
    process.stdout.write(`${JSON.stringify(state, null, 2)}\n`);
    return 0;
  } finally {
    await readModels.close();
    await eventStore.close();
  }
}

async function verifyCommand(values: Values): Promise<number> {
  if (values.firm !== undefined && values.file !== undefined) {
    throw new UsageError('verify takes --firm or --file, not both');
  }
  if (values.firm !== undefined) return verifyFirmCommand(values.firm);
  if (values.file === undefined) throw new UsageError('verify needs --firm or --file');
  const bar = progressBar('bytes');
  let result;
  try {
    result = await verifyExportFile(values.file, {
      onProgress: (bytesRead, size) => bar.update(bytesRead, size),
    });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES') {
      throw new UsageError(`cannot read ${values.file} (${String(code)})`);
    }
    throw error;
  } finally {
    bar.stop();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return result.ok ? 0 : 1;
}

/** The stored history of one firm against its chains and anchors (ADR 0017): exit 0 ok, 1 broken. */
async function verifyFirmCommand(firmId: string): Promise<number> {
  const config = cliConfiguration();
  const eventStore = await openEventStore(config);
  try {
    const bar = progressBar('checked');
    const head = Number(await eventStore.headPosition());
    let checked = 0;
    const counted = async function* () {
      for await (const event of firmEvents(eventStore, firmId)) {
        if (++checked % 1_000 === 0) bar.update(Number(event.position), head, { done: checked });
        yield event;
      }
    };
    let result;
    try {
      result = await verifyFirmChains(counted(), firmId);
    } finally {
      bar.stop();
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return result.ok ? 0 : 1;
  } finally {
    await eventStore.close();
  }
}

async function openEventStore(config: AppConfig): Promise<EventStore> {
  if (!config.eventStoreUrl) return new SqliteEventStore(join(config.dataDir, 'events.sqlite'));
  const { KurrentDbEventStore } = await import('../event-store/kurrentdb-event-store');
  return new KurrentDbEventStore(config.eventStoreUrl);
}

/** A bar on stderr while a long command runs, only when stderr is a terminal (never in a pipe or a log). */
function progressBar(unit: 'events' | 'checked' | 'bytes') {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar({
    stream: process.stderr,
    format:
      unit === 'bytes'
        ? '[{bar}] {percentage}% of the file checked | ETA {eta}s'
        : `[{bar}] {percentage}% of the log read | {done} events ${unit === 'events' ? 'exported' : 'checked'} | {duration}s`,
    hideCursor: true,
    clearOnComplete: false,
  });
  let started = false;
  return {
    update: (value: number, total: number, payload: object = {}) => {
      if (!started) {
        bar.start(Math.max(1, total), 0, { done: 0 });
        started = true;
      }
      bar.setTotal(Math.max(1, total));
      bar.update(value, payload);
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

runCli('audit', main);
