import { join } from 'node:path';
import { ALL_PROJECTIONS } from '../../projections';
import { openReadModelStore } from '../read-model/open-read-model-store';
import { ConfigError, loadConfig } from '../config/config';
import type { EventStore } from '../event-store/event-store.port';
import { SqliteEventStore } from '../event-store/sqlite-event-store';
import { rebuildProjections, RebuildProgress } from '../projection-engine/rebuild';

/**
 * Operator commands on the read models, on the configured stores (DATA_DIR,
 * EVENTSTORE_URL, MONGODB_URL), whether the service runs or not:
 *   npm run projections -- status
 *   npm run projections -- rebuild [NAME]        rebuild one or all from zero
 *   npm run projections -- skip NAME POSITION [NOTE]
 */
async function main(): Promise<number> {
  const [command, ...args] = process.argv.slice(2);
  const names = ALL_PROJECTIONS.map((p) => p.name);
  let config;
  try {
    config = loadConfig().config;
  } catch (error) {
    if (error instanceof ConfigError) return fail(`Configuration error: ${error.message}`);
    throw error;
  }
  if (!['status', 'rebuild', 'skip'].includes(command ?? '')) {
    return fail(
      'usage: npm run projections -- status | rebuild [NAME] | skip NAME POSITION [NOTE]',
    );
  }
  const readModels = await openReadModelStore(config, { writerThread: command === 'rebuild' });
  try {
    if (command === 'skip') {
      const [name, position, ...note] = args;
      if (!names.includes(name)) return fail(`NAME must be one of ${names.join(', ')}`);
      if (!/^\d{1,20}$/.test(position ?? ''))
        return fail('POSITION must be a log position (digits)');
      await readModels.recordSkip(
        name,
        BigInt(position),
        note.join(' ') || `skipped by ${process.env.USER ?? 'an operator'}`,
      );
      process.stdout.write(
        `Recorded: ${name} skips position ${position}. A running service resumes the projection within a second.\n`,
      );
      return 0;
    }
    if (command === 'status') {
      const active = await readModels.activeGenerations();
      for (const checkpoint of await readModels.listCheckpoints()) {
        const serving = active.get(checkpoint.projection) === checkpoint.generation;
        process.stdout.write(
          `${checkpoint.projection.padEnd(16)} generation ${checkpoint.generation}${serving ? ' (served)' : ''}` +
            `  position ${checkpoint.position}` +
            (checkpoint.failure
              ? `  STOPPED at ${checkpoint.failure.position} (${checkpoint.failure.eventType}): ${checkpoint.failure.error}`
              : '') +
            '\n',
        );
      }
      return 0;
    }
    const [name] = args;
    if (name !== undefined && !names.includes(name)) {
      return fail(`NAME must be one of ${names.join(', ')}`);
    }
    const selected = ALL_PROJECTIONS.filter((p) => name === undefined || p.name === name);
    const eventStore = await openEventStore(config.eventStoreUrl, config.dataDir);
    try {
      const bar = progressBar();
      const results = await rebuildProjections(eventStore, readModels, selected, {
        onProgress: bar.update,
      });
      bar.done();
      let failed = false;
      for (const result of results) {
        if (result.failure) {
          failed = true;
          process.stdout.write(
            `${result.projection}: FAILED at position ${result.failure.position} (${result.failure.eventType}): ` +
              `${result.failure.error}. The previous read model stays in service.\n`,
          );
        } else {
          process.stdout.write(
            `${result.projection}: rebuilt to position ${result.position} as generation ${result.generation}, now served\n`,
          );
        }
      }
      return failed ? 1 : 0;
    } finally {
      await eventStore.close();
    }
  } finally {
    await readModels.close();
  }
}

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

function fail(message: string): number {
  process.stderr.write(`${message}\n`);
  return 2;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `projections: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exit(1);
  },
);
