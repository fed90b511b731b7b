import type { EventStore, FirmEvent } from '../event-store/event-store.port';

/** Events read per page: enough to keep the store busy, few enough to keep memory flat. */
const PAGE_SIZE = 1_000;

/**
 * Every event of one firm in log order, as stored (not upcast), read a page at
 * a time with `EventStore.readFirm`: what the chain verification folds over.
 * Memory holds one page whatever the history's length. Throws what the store
 * throws.
 */
export async function* firmEvents(
  store: EventStore,
  firmId: string,
  pageSize = PAGE_SIZE,
): AsyncGenerator<FirmEvent> {
  let after = 0n;
  for (;;) {
    const { events, through } = await store.readFirm(firmId, { after, maxCount: pageSize });
    yield* events;
    if (through <= after) return;
    after = through;
  }
}
