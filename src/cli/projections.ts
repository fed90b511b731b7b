import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ALL_PROJECTIONS } from '../../projections';
import type { Projection } from '../projection-engine/projection';
import { ConfigError, loadConfig } from '../config/config';
import type { EventStore } from '../event-store/event-store.port';
import { SqliteEventStore } from '../event-store/sqlite-event-store';
import { rebuildProjections, RebuildProgress, RebuildResult } from '../projection-engine/rebuild';
import { openReadModelStore } from '../read-model/open-read-model-store';
import type { QuarantinedEvent, ReadModelStore } from '../read-model/read-model-store.port';
import { runCli, UsageError } from './run-cli';

const USAGE = `Operator commands on the read models and process managers, on the configured
stores (DATA_DIR, EVENTSTORE_URL, MONGODB_URL), whether the service runs or not.

usage: npm run projections -- COMMAND [ARGUMENTS]

  status                         each projection's generations and each process manager:
                                 position, quarantined events, recorded skips, a failing event
  quarantine [CONSUMER]          list quarantined events (position, type, stream, reason)
  skip CONSUMER POSITION [NOTE]  do without an event CONSUMER failed on (quarantined, or
                                 the event a process manager keeps failing on)
  replay CONSUMER POSITION       once fixed: a projection is rebuilt from zero (events apply
                                 in log order); a running service hands the event to a
                                 process manager once more
  rebuild [PROJECTION]           rebuild one projection, or all, from zero

A CONSUMER is a projection or a process manager. Exit status: 0 done, 1 the
command ran but something is still wrong (an event still quarantined, a
rebuild not activated), 2 a command, argument or configuration error.`;

async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: { help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [command, ...args] = positionals;
  const commands: Record<string, [min: number, max: number]> = {
    status: [0, 0],
    quarantine: [0, 1],
    skip: [2, Infinity],
    replay: [2, 2],
    rebuild: [0, 1],
  };
  const arity = commands[command ?? ''];
  if (!arity) {
    throw new UsageError(
      command === undefined ? 'a command is required' : `unknown command ${command}`,
    );
  }
  if (args.length < arity[0] || args.length > arity[1]) {
    throw new UsageError(`wrong number of arguments for ${command}`);
  }
  let config;
  try {
    config = loadConfig().config;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`Configuration error: ${error.message.split('\n')[0]}\n`);
      return 2;
    }
    throw error;
  }
  const rebuilds = command === 'rebuild' || command === 'replay';
  const readModels = await openReadModelStore(config, { writerThread: rebuilds });
  try {
    const cli = new Cli(readModels, () => openEventStore(config.eventStoreUrl, config.dataDir));
    switch (command) {
      case 'status':
        return await cli.status();
      case 'quarantine':
        return await cli.quarantine(args[0]);
      case 'skip':
        return await cli.skip(args[0], args[1], args.slice(2).join(' '));
      case 'replay':
        return await cli.replay(args[0], args[1]);
      default:
        return await cli.rebuild(args[0]);
    }
  } finally {
    await readModels.close();
  }
}

class Cli {
  constructor(
    private readonly store: ReadModelStore,
    private readonly openEventStore: () => Promise<EventStore>,
  ) {}

  async status(): Promise<number> {
    const active = await this.store.activeGenerations();
    const quarantined = await this.store.quarantined();
    const skips = await this.store.skips();
    const failures = await this.store.processFailures();
    const skipLines = (consumer: string) =>
      skips
        .filter((skip) => skip.consumer === consumer)
        .map(
          (skip) =>
            `  skipped      ${skip.position}  ${skip.note}  (recorded ${skip.recordedAt})\n`,
        );
    const counts = (consumer: string, generation: number) =>
      `  quarantined ${quarantined.filter((q) => q.consumer === consumer && q.generation === generation).length}` +
      `  skipped ${skips.filter((skip) => skip.consumer === consumer).length}`;
    const quarantineLines = (consumer: string, generation: number) =>
      quarantined
        .filter((q) => q.consumer === consumer && q.generation === generation)
        .map((q) => `  quarantined  ${describe(q)}\n`);
    let out = '';
    const checkpoints = await this.store.listCheckpoints();
    for (const checkpoint of checkpoints) {
      const name = checkpoint.projection;
      const serving = active.get(name) === checkpoint.generation;
      out +=
        `${name.padEnd(20)} generation ${checkpoint.generation}${serving ? ' (served)' : ''}` +
        `  position ${checkpoint.position}${counts(name, checkpoint.generation)}\n`;
      out += quarantineLines(name, checkpoint.generation).join('');
      // A projection's skips hold for every generation: listed once, under the served one.
      const last = checkpoints.filter((c) => c.projection === name).pop();
      if (serving || (!active.has(name) && last === checkpoint)) out += skipLines(name).join('');
    }
    for (const { name, position } of await this.store.listProcessCheckpoints()) {
      out += `${name.padEnd(20)} process manager  position ${position}${counts(name, 0)}\n`;
      out += quarantineLines(name, 0).join('');
      out += skipLines(name).join('');
      const failing = failures.find((failure) => failure.name === name);
      if (failing) {
        out +=
          `  FAILING      ${failing.position}  ${failing.eventType}  ${failing.streamId ?? '-'}  ${failing.error}` +
          `  (${failing.attempts} attempts since ${failing.since}; retried until it succeeds or is skipped)\n`;
      }
    }
    process.stdout.write(out);
    return 0;
  }

  async quarantine(consumer: string | undefined): Promise<number> {
    if (consumer !== undefined) await this.kindOf(consumer);
    const active = await this.store.activeGenerations();
    const lines = (await this.current(consumer)).map((record) => {
      const note =
        record.generation !== 0 && record.generation !== active.get(record.consumer)
          ? `  [generation ${record.generation}, not served yet]`
          : '';
      return `${record.consumer.padEnd(20)} ${describe(record)}${note}\n`;
    });
    process.stdout.write(lines.join(''));
    return 0;
  }

  /**
   * The quarantined events that matter: a process manager's, and those of a
   * projection's served generation or of one being built. Older generations
   * are leftovers of a rebuild, waiting to be dropped.
   */
  private async current(consumer?: string): Promise<QuarantinedEvent[]> {
    const active = await this.store.activeGenerations();
    return (await this.store.quarantined(consumer)).filter((record) => {
      const served = active.get(record.consumer);
      return record.generation === 0 || served === undefined || record.generation >= served;
    });
  }

  async skip(consumer: string, positionText: string, note: string): Promise<number> {
    const position = parsePosition(positionText);
    const kind = await this.kindOf(consumer);
    const quarantined = (await this.current(consumer)).some((q) => q.position === position);
    const failing =
      kind === 'process manager' &&
      (await this.store.processFailures()).some(
        (failure) => failure.name === consumer && failure.position === position,
      );
    if (!quarantined && !failing) {
      throw new UsageError(
        `${consumer} did not fail on position ${position}: only a quarantined event, or the one a process ` +
          `manager keeps failing on, can be skipped (npm run projections -- status)`,
      );
    }
    await this.store.recordSkip(
      consumer,
      position,
      note || `skipped by ${process.env.USER ?? 'an operator'}`,
    );
    process.stdout.write(
      `Recorded: ${consumer} skips position ${position}.` +
        (failing ? ' A running service lets the process manager go on within a second.' : '') +
        '\n',
    );
    return 0;
  }

  async replay(consumer: string, positionText: string): Promise<number> {
    const position = parsePosition(positionText);
    const kind = await this.kindOf(consumer);
    const quarantined = (await this.current(consumer)).some((q) => q.position === position);
    const skipped = (await this.store.skips(consumer)).some((skip) => skip.position === position);
    if (!quarantined && !skipped) {
      throw new UsageError(
        `position ${position} is neither quarantined nor skipped for ${consumer} (npm run projections -- quarantine ${consumer})`,
      );
    }
    // Replaying a skipped event takes the operator's skip back.
    if (skipped) await this.store.removeSkip(consumer, position);
    if (kind === 'process manager') {
      await this.store.requestReplay(consumer, position);
      process.stdout.write(
        `Requested: a running service hands position ${position} to ${consumer} again within a second; ` +
          `it leaves the quarantine if handled (npm run projections -- quarantine ${consumer}).\n`,
      );
      return 0;
    }
    // One event cannot be applied late on top of newer documents: the projection is rebuilt.
    const [result] = await this.rebuildWith([projectionNamed(consumer)!]);
    const again = result.quarantined.find((q) => q.position === position);
    if (again) {
      process.stdout.write(
        `${consumer}: position ${position} is still quarantined: ${again.reason}.\n`,
      );
    } else {
      process.stdout.write(`${consumer}: position ${position} applied.\n`);
    }
    this.report(result);
    return again || !result.activated ? 1 : 0;
  }

  async rebuild(name: string | undefined): Promise<number> {
    if (name !== undefined && !projectionNamed(name)) {
      throw new UsageError(`no projection named ${name} (${projectionNames()})`);
    }
    const results = await this.rebuildWith(
      ALL_PROJECTIONS.filter((p) => name === undefined || p.name === name),
    );
    for (const result of results) this.report(result);
    return results.every((result) => result.activated) ? 0 : 1;
  }

  private async rebuildWith(projections: readonly Projection[]): Promise<RebuildResult[]> {
    const eventStore = await this.openEventStore();
    try {
      const bar = progressBar();
      const results = await rebuildProjections(eventStore, this.store, projections, {
        onProgress: bar.update,
      });
      bar.done();
      return results;
    } finally {
      await eventStore.close();
    }
  }

  private report(result: RebuildResult): void {
    const name = result.projection;
    if (!result.activated) {
      const first = result.regressions[0];
      process.stdout.write(
        `${name}: NOT activated: generation ${result.generation} quarantined ${result.regressions.length} ` +
          `events the served generation applied, first ${describe(first)}. ` +
          'The previous read model stays in service.\n',
      );
      return;
    }
    const count = result.quarantined.length;
    process.stdout.write(
      `${name}: rebuilt to position ${result.position} as generation ${result.generation}, now served` +
        (count > 0
          ? `; ${count} events quarantined (npm run projections -- quarantine ${name})`
          : '') +
        '\n',
    );
  }

  /** A projection, or a process manager the store knows; anything else is a usage error. */
  private async kindOf(consumer: string): Promise<'projection' | 'process manager'> {
    if (projectionNamed(consumer)) return 'projection';
    const managers = await this.store.listProcessCheckpoints();
    if (managers.some((m) => m.name === consumer)) return 'process manager';
    throw new UsageError(
      `no consumer named ${consumer} (projections: ${projectionNames()}; process managers: ` +
        `${managers.map((m) => m.name).join(', ') || 'none has run yet'})`,
    );
  }
}

function describe(record: QuarantinedEvent): string {
  return (
    `${record.position}  ${record.eventType}  ${record.streamId ?? '-'}  ${record.reason}` +
    `  (${record.at})`
  );
}

function parsePosition(text: string): bigint {
  if (!/^\d{1,20}$/.test(text)) throw new UsageError(`POSITION must be a log position (digits)`);
  return BigInt(text);
}

const projectionNamed = (name: string) => ALL_PROJECTIONS.find((p) => p.name === name);
const projectionNames = () => ALL_PROJECTIONS.map((p) => p.name).join(', ');

async function openEventStore(url: string | null, dataDir: string): Promise<EventStore> {
  if (!url) return new SqliteEventStore(join(dataDir, 'events.sqlite'));
  const { KurrentDbEventStore } = await import('../event-store/kurrentdb-event-store');
  return new KurrentDbEventStore(url);
}

/** One line on stderr, redrawn at most five times a second: done, rate, time left. */
function progressBar() {
  let last = 0;
  let latest: RebuildProgress | undefined;
  const draw = (progress: RebuildProgress) => {
    const fraction = progress.head > 0n ? Number(progress.position) / Number(progress.head) : 1;
    const width = 30;
    const filled = Math.min(width, Math.round(fraction * width));
    const rate = progress.elapsedMs > 0 ? (progress.events * 1000) / progress.elapsedMs : 0;
    const left =
      fraction > 0 ? ((progress.elapsedMs / fraction) * (1 - fraction)) / 1000 : Number.NaN;
    process.stderr.write(
      `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor(fraction * 100)}%  ` +
        `${progress.events.toLocaleString('en-US')} events  ${Math.round(rate).toLocaleString('en-US')} events/s  ` +
        `${Number.isFinite(left) ? `${left.toFixed(1)} s left` : ''}   `,
    );
  };
  return {
    update: (progress: RebuildProgress) => {
      latest = progress;
      if (Date.now() - last >= 200) {
        last = Date.now();
        draw(progress);
      }
    },
    done: () => {
      if (latest) draw(latest);
      process.stderr.write('\n');
    },
  };
}

runCli('projections', main);
