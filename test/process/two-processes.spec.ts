import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteEventStore } from '../../src/event-store/sqlite-event-store';
import { tempDir } from '../support/harness';
import { requireBuild, ROOT } from '../support/processes';

/**
 * Two processes on the same SQLite files append to one stream, each at the
 * revision it read. SQLite's write lock and the expected-revision check inside
 * it must make exactly one writer win each revision, and lose nothing.
 */
describe('two processes appending to the same stream', () => {
  let dir: string;
  beforeAll(() => requireBuild());
  beforeEach(() => (dir = tempDir('mfa-two-')));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('exactly one wins each revision; no event is lost or doubled', async () => {
    const file = join(dir, 'events.sqlite');
    // Create the file first so that both workers open an existing WAL database.
    const setup = new SqliteEventStore(file);
    await setup.close();
    const perWorker = 150;
    const workers = ['A', 'B'].map((name) =>
      spawn(
        process.execPath,
        [
          join(ROOT, 'test/support/append-worker.js'),
          file,
          'counter-shared',
          name,
          String(perWorker),
        ],
        {
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      ),
    );
    const outputs = workers.map((child) => {
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
      return {
        ready: once(child.stdout, 'data'),
        done: once(child, 'close').then(([code]) => ({ code, text })),
      };
    });
    await Promise.all(outputs.map((o) => o.ready));
    for (const child of workers) child.stdin.write('go\n');
    const results = await Promise.all(outputs.map((o) => o.done));
    for (const result of results) expect(result.code).toBe(0);
    const attempts = results.flatMap(
      (r) =>
        JSON.parse(r.text.split('\n')[1]) as Array<{
          expected: string;
          eventId: string;
          won: boolean;
        }>,
    );

    const store = new SqliteEventStore(file);
    const events = await store.readStream('counter-shared');
    await store.close();

    expect(events).toHaveLength(2 * perWorker);
    expect(events.map((e) => e.revision)).toEqual(events.map((_, i) => BigInt(i)));
    const winners = attempts.filter((a) => a.won);
    expect(new Set(events.map((e) => e.metadata.eventId))).toEqual(
      new Set(winners.map((a) => a.eventId)),
    );
    // One winner per expected revision: the revision before each event, 'no_stream' for the first.
    const wonAt = winners.map((a) => a.expected).sort();
    expect(new Set(wonAt).size).toBe(wonAt.length);
    // Both really competed: some attempts lost a race.
    expect(attempts.some((a) => !a.won)).toBe(true);
    for (const name of ['A', 'B']) {
      expect(events.filter((e) => e.data.worker === name).map((e) => e.data.n)).toEqual(
        Array.from({ length: perWorker }, (_, i) => i),
      );
    }
  });
});
