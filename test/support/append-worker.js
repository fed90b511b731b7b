// A second process for the two-process test: appends `count` events to one
// stream through the built SQLite adapter, each at the revision it last read,
// retrying on conflict. Prints every attempt as JSON when done.
const { SqliteEventStore } = require('../../dist/src/event-store/sqlite-event-store');
const { WrongExpectedRevisionError } = require('../../dist/src/event-store/event-store.port');
const { randomUUID } = require('node:crypto');

async function main() {
  const [file, streamId, worker, countText] = process.argv.slice(2);
  const store = new SqliteEventStore(file);
  // Start barrier: both workers are up before either appends, so they really race.
  process.stdout.write('ready\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  const attempts = [];
  let appended = 0;
  while (appended < Number(countText)) {
    const last = (await store.readStream(streamId, { direction: 'backwards', maxCount: 1 }))[0];
    const expected = last ? last.revision : 'no_stream';
    const eventId = randomUUID();
    try {
      await store.appendToStream(streamId, [event(eventId, worker, appended)], expected);
      attempts.push({ expected: String(expected), eventId, won: true });
      appended++;
    } catch (error) {
      if (!(error instanceof WrongExpectedRevisionError)) throw error;
      attempts.push({ expected: String(expected), eventId, won: false });
    }
  }
  await store.close();
  process.stdout.write(`${JSON.stringify(attempts)}\n`);
  process.stdin.destroy();
}

function event(eventId, worker, n) {
  return {
    type: 'Counted',
    data: { worker, n },
    metadata: {
      eventId,
      firmId: 'two-process',
      actor: { id: worker, role: 'system' },
      correlationId: eventId,
      causationId: eventId,
      commandId: eventId,
      occurredAt: new Date().toISOString(),
      schemaVersion: 1,
    },
  };
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack));
  process.exit(1);
});
