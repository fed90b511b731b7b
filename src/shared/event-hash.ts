import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type { EventMetadata, JsonObject, JsonValue } from '../event-store/event-store.port';

/*
 * The tamper-evident chain's arithmetic (ADR 0017, docs/audit.md): what an
 * event's hash covers, how key material is kept out of exports without
 * breaking verification, and the canonical form the hash is taken over. Pure:
 * the append path, the online verification, the export and the offline
 * verification of a saved export all call these, so they cannot disagree.
 */

/** Hex SHA-256 of a UTF-8 string. */
export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * RFC 8785 (JSON Canonicalization Scheme): keys sorted by UTF-16 code units,
 * no whitespace, numbers in their ECMAScript shortest form. Same value, same
 * bytes, on every machine. Throws on values JSON cannot hold, and on a string
 * (or key) holding a lone UTF-16 surrogate, which RFC 8785 (I-JSON) refuses.
 * canonicalize 2.x: its later majors are ESM only and then need Node 22.
 */
export function canonicalJson(value: unknown): string {
  assertWellFormed(value);
  const text = canonicalize(value) as string | undefined;
  if (text === undefined) throw new Error('Not a JSON value');
  return text;
}

/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function assertWellFormed(value: unknown): void {
  if (typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) throw new Error('A string holds a lone UTF-16 surrogate');
  } else if (Array.isArray(value)) {
    for (const item of value) assertWellFormed(item);
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      assertWellFormed(key);
      assertWellFormed(item);
    }
  }
}

/**
 * The fields of an event's data that are key material: never exported, never
 * shown to an auditor. Dotted paths into `data`, by event type.
 *   - a sealed TOTP secret (AES-GCM ciphertext under the user's data key: a
 *     leaked key store plus an export would give the secret);
 *   - a security key's COSE public key: not a secret, but key material that
 *     identifies the device and that nobody auditing needs.
 * A new event type holding key material is added here (and to the catalog).
 */
export const KEY_MATERIAL: Readonly<Record<string, readonly string[]>> = {
  TotpEnrollmentStarted: ['secret'],
  WebAuthnRegistrationVerified: ['credential.publicKey'],
  FactorConfirmed: ['credential.publicKey'],
};

/** What stands for a value of key material in an export: its SHA-256 over its canonical form. */
export interface Redacted {
  redacted: string;
}

const redactionOf = (value: JsonValue): Redacted => ({
  redacted: `sha256:${sha256(canonicalJson(value))}`,
});

const isRedacted = (value: unknown): value is Redacted =>
  typeof value === 'object' &&
  value !== null &&
  !Array.isArray(value) &&
  Object.keys(value).length === 1 &&
  typeof (value as Redacted).redacted === 'string' &&
  (value as Redacted).redacted.startsWith('sha256:');

/**
 * `data` with each key-material field of its type replaced by its digest
 * (`{ redacted: "sha256:…" }`); a new object, `data` is not changed. A field
 * already redacted stays as it is, so redacting twice changes nothing: the
 * hash of an exported event is computed from the export's own lines.
 */
export function redactKeyMaterial(type: string, data: JsonObject): JsonObject {
  const paths = KEY_MATERIAL[type];
  if (!paths) return data;
  const copy = structuredClone(data);
  for (const path of paths) {
    const parts = path.split('.');
    let parent: JsonValue | undefined = copy;
    for (const part of parts.slice(0, -1)) {
      parent =
        typeof parent === 'object' && parent !== null && !Array.isArray(parent)
          ? parent[part]
          : undefined;
    }
    const last = parts[parts.length - 1];
    if (typeof parent !== 'object' || parent === null || Array.isArray(parent)) continue;
    if (!(last in parent) || isRedacted(parent[last])) continue;
    parent[last] = redactionOf(parent[last]) as unknown as JsonValue;
  }
  return copy;
}

/** The metadata fields the chain adds; not part of the hashed content. */
export interface ChainLink {
  /** Hex SHA-256 of the event's chained content (`eventHash`). */
  hash: string;
  /** The `hash` of the previous event of the stream; null for the first chained event. */
  previousHash: string | null;
}

/** Metadata as written by a chained append. */
export type ChainedMetadata = EventMetadata & ChainLink;

/** What of an event its hash covers: all of it but its log position, which the store assigns. */
export interface ChainedContent {
  streamId: string;
  /** The event's revision in its stream (0-based). */
  revision: bigint;
  type: string;
  data: JsonObject;
  /** With or without `hash`/`previousHash`: they are left out of the content. */
  metadata: EventMetadata | ChainedMetadata;
}

/**
 * The event's hash: SHA-256 over the canonical JSON (RFC 8785) of
 * `{ streamId, revision, type, data, metadata, previousHash }`, where `data`
 * has its key material replaced by digests (so an export, which never holds
 * key material, verifies to the same hash) and `metadata` is without `hash`
 * and `previousHash`. The revision is a decimal string (revisions are 64-bit).
 * `previousHash` links the event to its predecessor in the stream, so an
 * edited, removed, inserted or reordered event breaks every hash after it.
 */
export function eventHash(event: ChainedContent, previousHash: string | null): string {
  const { hash: _hash, previousHash: _previous, ...metadata } = event.metadata as ChainedMetadata;
  return sha256(
    canonicalJson({
      streamId: event.streamId,
      revision: event.revision.toString(),
      type: event.type,
      data: redactKeyMaterial(event.type, event.data),
      metadata,
      previousHash,
    }),
  );
}

/** The chain fields of a metadata object, when it has well-formed ones. */
export function chainLinkOf(metadata: unknown): ChainLink | undefined {
  if (typeof metadata !== 'object' || metadata === null) return undefined;
  const { hash, previousHash } = metadata as Partial<ChainLink>;
  const isHash = (value: unknown) => typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
  if (!isHash(hash)) return undefined;
  if (previousHash !== null && !isHash(previousHash)) return undefined;
  return { hash: hash as string, previousHash: previousHash as string | null };
}
