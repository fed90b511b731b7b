import { execFileSync } from 'node:child_process';
import {
  canonicalJson,
  chainLinkOf,
  eventHash,
  redactKeyMaterial,
  sha256,
} from '../../src/shared/event-hash';
import type { EventMetadata } from '../../src/event-store/event-store.port';

/*
 * The chain's arithmetic against an independent implementation: Python's
 * json (sorted keys, no spaces, UTF-8) and hashlib give RFC 8785's bytes for
 * these values (string keys of ASCII, integers), so an auditor can recompute
 * a hash with nothing of ours.
 */
const python = (script: string, input: string): string =>
  execFileSync('python3', ['-c', script], { input, encoding: 'utf8' }).trim();

const PY_HASH = `
import hashlib, json, sys
event = json.load(sys.stdin)
meta = {k: v for k, v in event["metadata"].items() if k not in ("hash", "previousHash")}
content = {"streamId": event["streamId"], "revision": str(event["revision"]), "type": event["type"],
           "data": event["data"], "metadata": meta, "previousHash": event["previous"]}
text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
print(hashlib.sha256(text.encode("utf-8")).hexdigest())
`;

const metadata: EventMetadata = {
  eventId: 'e-1',
  firmId: 'acme',
  actor: { id: 'host-app', role: 'host' },
  correlationId: 'c-1',
  causationId: 'c-1',
  commandId: 'cmd-1',
  occurredAt: '2026-01-15T09:00:00.000Z',
  schemaVersion: 1,
};

describe('event hashes', () => {
  it('are SHA-256 over the canonical content, as Python computes them', () => {
    const event = {
      streamId: 'user-acme/ann',
      revision: 3n,
      type: 'UserRegistered',
      data: { userId: 'ann', name: 'Ann Lee — Ünïcode', role: 'case-manager', n: 12 },
      metadata,
    };
    const previous = sha256('before');
    const ours = eventHash(event, previous);
    const theirs = python(PY_HASH, JSON.stringify({ ...event, revision: '3', previous }));
    expect(ours).toBe(theirs);
    expect(ours).toMatch(/^[0-9a-f]{64}$/);
  });

  it('change with every part of the event, and not with the chain fields of the metadata', () => {
    const event = {
      streamId: 's-1',
      revision: 0n,
      type: 'T',
      data: { a: 1 },
      metadata,
    };
    const base = eventHash(event, null);
    expect(eventHash({ ...event, streamId: 's-2' }, null)).not.toBe(base);
    expect(eventHash({ ...event, revision: 1n }, null)).not.toBe(base);
    expect(eventHash({ ...event, type: 'U' }, null)).not.toBe(base);
    expect(eventHash({ ...event, data: { a: 2 } }, null)).not.toBe(base);
    expect(
      eventHash({ ...event, metadata: { ...metadata, actor: { id: 'x', role: 'host' } } }, null),
    ).not.toBe(base);
    expect(eventHash(event, sha256('x'))).not.toBe(base);
    expect(
      eventHash({ ...event, metadata: { ...metadata, hash: base, previousHash: null } }, null),
    ).toBe(base);
  });

  it('are the same for an event and its export, whose key material is a digest', () => {
    const event = {
      streamId: 'user-acme/ann',
      revision: 1n,
      type: 'TotpEnrollmentStarted',
      data: { enrollmentId: 'en-1', secret: { keyId: 'k', iv: 'aa', ciphertext: 'bb', tag: 'cc' } },
      metadata,
    };
    const exported = redactKeyMaterial(event.type, event.data);
    expect(JSON.stringify(exported)).not.toContain('bb');
    expect(exported.secret).toEqual({
      redacted: `sha256:${sha256(canonicalJson(event.data.secret))}`,
    });
    expect(redactKeyMaterial(event.type, exported)).toEqual(exported);
    expect(eventHash({ ...event, data: exported }, null)).toBe(eventHash(event, null));
    // The original is left as it was.
    expect(event.data.secret.ciphertext).toBe('bb');
  });

  it('redact a security key’s public key inside its credential, and leave other types alone', () => {
    const data = { credential: { credentialId: 'cid', publicKey: 'pQECAyYgAS' }, factorId: 'f' };
    const redacted = redactKeyMaterial('FactorConfirmed', data);
    expect(redacted.credential).toMatchObject({ credentialId: 'cid' });
    expect(JSON.stringify(redacted)).not.toContain('pQECAyYgAS');
    expect(redactKeyMaterial('FactorConfirmed', { factorId: 'f' })).toEqual({ factorId: 'f' });
    expect(redactKeyMaterial('UserRegistered', data)).toBe(data);
  });

  it('read chain links only when well formed', () => {
    const hash = sha256('a');
    expect(chainLinkOf({ hash, previousHash: null })).toEqual({ hash, previousHash: null });
    expect(chainLinkOf({ hash, previousHash: hash })).toEqual({ hash, previousHash: hash });
    expect(chainLinkOf({ hash })).toBeUndefined();
    expect(chainLinkOf({ hash: 'x', previousHash: null })).toBeUndefined();
    expect(chainLinkOf(null)).toBeUndefined();
  });
});
