import type { RecordedEvent } from '../src/event-store/event-store.port';
import type {
  EmailFailure,
  MailTransportKind,
  NotificationKind,
  Recipient,
} from '../src/notifications/notifications.decider';
import {
  DocumentChange,
  DocumentSnapshot,
  key,
  Projection,
  put,
  ReadModelReader,
  remove,
} from '../src/projection-engine/projection';

/*
 * Emails the mail server refused for good (DESIGN §5: "a permanent refusal is
 * recorded as failed, not retried for ever"), for operators: the list of a
 * firm (GET /v1/firms/{firmId}/mfa/notifications/failed) and the count of all
 * firms in /health. From the firms' notifications streams:
 *   failed   one document per EmailFailed, removed once an operator queues
 *            the email again (an EmailQueued with `retryOf`)
 *   totals   one document, `all-firms`: how many failed emails wait for an
 *            operator, across firms (a number only: no firm, user or address)
 */

export interface FailedEmailDoc {
  firmId: string;
  messageId: string;
  notification: NotificationKind;
  recipient: Recipient;
  transport: MailTransportKind;
  responseCode: number;
  /** The server's reply text: it may name the address, so only operators read it. */
  response: string;
  attempts: number;
  failedAt: string;
}

interface TotalsDoc {
  failed: number;
}

const TOTALS = 'all-firms';

export const failedEmailsProjection: Projection = {
  name: 'failed-emails',
  version: 1,
  collections: [
    {
      name: 'failed',
      fields: ['firmId', 'failedAt'],
      indexes: [
        ['firmId', 'failedAt', 'id'],
        ['failedAt', 'id'],
      ],
    },
    { name: 'totals', fields: [], indexes: [] },
  ],
  handles: ['EmailFailed', 'EmailQueued'],

  evolve(event: RecordedEvent, documents: DocumentSnapshot): DocumentChange[] {
    const firmId = event.metadata.firmId;
    const totals = () => documents.get<TotalsDoc>('totals', TOTALS) ?? { failed: 0 };
    switch (event.type) {
      case 'EmailFailed': {
        const data = event.data as unknown as EmailFailure & {
          notification: NotificationKind;
          recipient: Recipient;
          failedAt: string;
        };
        const id = key(firmId, data.messageId);
        if (documents.get('failed', id)) return [];
        const doc: FailedEmailDoc = {
          firmId,
          messageId: data.messageId,
          notification: data.notification,
          recipient: data.recipient,
          transport: data.transport,
          responseCode: data.responseCode,
          response: data.response,
          attempts: data.attempts,
          failedAt: data.failedAt,
        };
        return [put('failed', id, doc), put('totals', TOTALS, { failed: totals().failed + 1 })];
      }
      case 'EmailQueued': {
        // Only an operator's retry of a failed email (`retryOf`) takes it off the list.
        const retryOf = event.data.retryOf;
        if (typeof retryOf !== 'string') return [];
        const id = key(firmId, retryOf);
        if (!documents.get('failed', id)) return [];
        return [
          remove('failed', id),
          put('totals', TOTALS, { failed: Math.max(0, totals().failed - 1) }),
        ];
      }
      default:
        return [];
    }
  },
};

/** Failed emails of all firms, waiting for an operator. */
export async function failedEmailCount(reader: ReadModelReader): Promise<number> {
  return (await reader.get<TotalsDoc>('totals', TOTALS))?.failed ?? 0;
}

/** The oldest failed emails of all firms, for operators' /health details. */
export function oldestFailedEmails(
  reader: ReadModelReader,
  limit: number,
): Promise<FailedEmailDoc[]> {
  return reader.find<FailedEmailDoc>('failed', { orderBy: ['failedAt', 'id'], limit });
}

/**
 * A firm's failed emails, oldest first, one page at a time. `after` is the
 * (failedAt, messageId) of the last email of the previous page.
 */
export async function failedEmailsOfFirm(
  reader: ReadModelReader,
  firmId: string,
  page: { after?: [string, string]; limit: number },
): Promise<{ items: FailedEmailDoc[]; next: [string, string] | null }> {
  const docs = await reader.find<FailedEmailDoc>('failed', {
    equals: { firmId },
    orderBy: ['failedAt', 'id'],
    after: page.after && [page.after[0], key(firmId, page.after[1])],
    limit: page.limit + 1,
  });
  const items = docs.slice(0, page.limit);
  const last = items[items.length - 1];
  return {
    items,
    next: docs.length > page.limit && last ? [last.failedAt, last.messageId] : null,
  };
}
