import type { EventMetadata, JsonObject, RecordedEvent } from './event-store.port';

/**
 * Turning what a store holds into a RecordedEvent without ever throwing. A
 * row whose data or metadata cannot be read (not JSON, not a JSON object) is
 * handed on as an event marked `corrupt`, with `data` = {} and whatever
 * metadata could be read: one bad row must not stop every reader of the log
 * (DESIGN §6: a corrupt event is quarantined per consumer and never stops
 * other consumers or firms). The reason never quotes the stored bytes, which
 * may hold tenant data.
 */
type Head = Pick<RecordedEvent, 'position' | 'streamId' | 'revision' | 'type'>;
type Part = 'data' | 'metadata';

/** An event whose data and metadata are stored as JSON text (SQLite). */
export function fromJsonText(head: Head, data: unknown, metadata: unknown): RecordedEvent {
  // The common case first, parsing each text once (rebuilds read a million rows).
  const dataObject = parseObject(data);
  const metadataObject = parseObject(metadata);
  if (dataObject && metadataObject) return event(head, dataObject, metadataObject);
  return corrupt(head, metadataObject, [
    dataObject ? undefined : textReason(data, 'data'),
    metadataObject ? undefined : textReason(metadata, 'metadata'),
  ]);
}

/** An event whose data and metadata a client has already decoded (KurrentDB). */
export function fromDecoded(head: Head, data: unknown, metadata: unknown): RecordedEvent {
  const dataReason = decodedReason(data, 'data');
  const metadataReason = decodedReason(metadata, 'metadata');
  if (!dataReason && !metadataReason) {
    return event(head, data as JsonObject, metadata as JsonObject);
  }
  return corrupt(head, metadataReason ? undefined : (metadata as JsonObject), [
    dataReason,
    metadataReason,
  ]);
}

function event(head: Head, data: JsonObject, metadata: JsonObject): RecordedEvent {
  return {
    position: head.position,
    streamId: head.streamId,
    revision: head.revision,
    type: head.type,
    data,
    metadata: metadata as unknown as EventMetadata,
  };
}

function corrupt(
  head: Head,
  metadata: JsonObject | undefined,
  reasons: Array<string | undefined>,
): RecordedEvent {
  return {
    ...event(head, {}, metadata ?? {}),
    corrupt: reasons.filter((reason) => reason !== undefined).join('; '),
  };
}

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseObject(text: unknown): JsonObject | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function textReason(text: unknown, part: Part): string {
  if (typeof text !== 'string') return `${part} is not JSON text`;
  try {
    return `${part} is not a JSON object (${kindOf(JSON.parse(text))})`;
  } catch {
    return `${part} is not valid JSON`;
  }
}

/**
 * KurrentDB's client hands back JSON that does not parse as its raw text, so a
 * string is either that or a JSON string: the reason says both. Non-JSON
 * content comes as bytes.
 */
function decodedReason(value: unknown, part: Part): string | undefined {
  if (value === undefined) return `${part} is missing`;
  if (value instanceof Uint8Array) return `${part} is not JSON (binary content)`;
  if (typeof value === 'string') return `${part} is not valid JSON, or not a JSON object`;
  return isObject(value) ? undefined : `${part} is not a JSON object (${kindOf(value)})`;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Whether an event of a firm's stream is the firm's: unless its metadata
 * names another firm (a hand edit, a bad restore). One whose metadata cannot
 * be read names none and stays, marked corrupt (ReadFirmOptions).
 */
export function ofFirm(event: RecordedEvent, firmId: string): boolean {
  const claimed = (event.metadata as { firmId?: unknown } | undefined)?.firmId;
  return typeof claimed !== 'string' || claimed === firmId;
}
