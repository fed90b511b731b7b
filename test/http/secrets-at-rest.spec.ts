import Database from 'better-sqlite3';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RunningService, startService, TestClock } from '../support/harness';
import {
  activeFirm,
  enrollTotp,
  expectOk,
  host,
  mfaPath,
  oathtool,
  registerUser,
  secretOf,
  superuserOf,
} from '../support/mfa';

/** Every file under a folder, recursively (the stores, their WAL and SHM files, the outbox). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

function base32Decode(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of text.replace(/=+$/, '')) {
    bits += alphabet.indexOf(char).toString(2).padStart(5, '0');
  }
  const bytes = bits.match(/.{8}/g) ?? [];
  return Buffer.from(bytes.map((byte) => parseInt(byte, 2)));
}

/** The secret in every encoding it could leak in. */
function encodingsOf(base32: string): Array<[string, Buffer]> {
  const raw = base32Decode(base32);
  return [
    ['base32', Buffer.from(base32)],
    ['base32, lower case', Buffer.from(base32.toLowerCase())],
    ['raw bytes', raw],
    ['hex', Buffer.from(raw.toString('hex'))],
    ['HEX', Buffer.from(raw.toString('hex').toUpperCase())],
    ['base64', Buffer.from(raw.toString('base64').replace(/=+$/, ''))],
    ['base64url', Buffer.from(raw.toString('base64url'))],
    ['base64 of the base32 text', Buffer.from(Buffer.from(base32).toString('base64').slice(0, 40))],
    ['UTF-16 base32', Buffer.from(base32, 'utf16le')],
  ];
}

/** DESIGN §6, issue 3 §7: TOTP secrets are sealed at rest, and a reset shreds them. */
describe('TOTP secrets at rest', () => {
  let service: RunningService;
  const clock = new TestClock(new Date('2026-03-02T10:00:00.000Z'));

  beforeAll(async () => (service = await startService({ clock })));
  afterAll(() => service.stop());

  it('no file under the data folder holds a TOTP secret in any encoding, after enrollment, logins and keyed retries', async () => {
    const api = service.api;
    await activeFirm(api, 'acme', 10);
    const secrets: string[] = [];
    for (const userId of ['ann', 'bob', 'cid']) {
      await registerUser(api, 'acme', userId);
      const enrolled = await enrollTotp(api, 'acme', userId, clock.now());
      secrets.push(enrolled.secret);
    }
    // A keyed start (whose answer holds the secret) and its retry; a pending enrollment.
    await registerUser(api, 'acme', 'dan');
    const headers = { 'idempotency-key': 'dan-start' };
    const started = await api.post(`${mfaPath('acme', 'dan')}/totp/enrollment`, host, {}, headers);
    expectOk(started, 201);
    expectOk(await api.post(`${mfaPath('acme', 'dan')}/totp/enrollment`, host, {}, headers), 201);
    secrets.push(secretOf(started.body.otpauthUri));
    clock.advance(30_000);
    expectOk(
      await api.post(`${mfaPath('acme', 'ann')}/totp/verify`, host, {
        code: oathtool(secrets[0], clock.now()),
      }),
    );
    expectOk(
      await api.post(
        `${mfaPath('acme', 'bob')}/totp/verify`,
        host,
        { code: oathtool(secrets[1], clock.now()) },
        { 'idempotency-key': 'bob-login' },
      ),
    );

    const files = filesUnder(service.dataDir);
    expect(files.some((file) => file.endsWith('events.sqlite'))).toBe(true);
    expect(files.some((file) => file.endsWith('keys.sqlite'))).toBe(true);
    const leaks: string[] = [];
    for (const file of files) {
      const content = readFileSync(file);
      for (const secret of secrets) {
        for (const [encoding, needle] of encodingsOf(secret)) {
          if (content.includes(needle)) leaks.push(`${file}: ${encoding}`);
        }
      }
    }
    expect(leaks).toEqual([]);
    // Control: the scan does see what the stores hold, e.g. the sealed form of the same secrets.
    const sealed = (await service.events())
      .filter((event) => event.type === 'TotpEnrollmentStarted')
      .map((event) => (event.data.secret as { ciphertext: string }).ciphertext);
    expect(sealed).toHaveLength(4);
    for (const ciphertext of sealed) {
      expect(files.some((file) => readFileSync(file).includes(Buffer.from(ciphertext)))).toBe(true);
    }
  });

  it('the sealed secret in the log names a data key that a reset destroys (crypto-shredding)', async () => {
    const api = service.api;
    await activeFirm(api, 'shred', 10);
    await registerUser(api, 'shred', 'eve');
    await enrollTotp(api, 'shred', 'eve', clock.now());
    const started = (await service.events()).find(
      (event) => event.type === 'TotpEnrollmentStarted' && event.streamId === 'user-shred/eve',
    );
    const sealed = started?.data.secret as { keyId: string; ciphertext: string };
    expect(sealed).toMatchObject({ keyId: expect.any(String), ciphertext: expect.any(String) });
    const keyRows = () => {
      const db = new Database(join(service.dataDir, 'keys.sqlite'), { readonly: true });
      try {
        return db
          .prepare('SELECT COUNT(*) AS n FROM data_keys WHERE key_id = ?')
          .get(sealed.keyId) as {
          n: number;
        };
      } finally {
        db.close();
      }
    };
    expect(keyRows().n).toBe(1);
    expectOk(
      await api.post(`${mfaPath('shred', 'eve')}/reset`, superuserOf('shred'), {
        reason: 'phone stolen',
      }),
    );
    expect(keyRows().n).toBe(0);
    // The event is still in the log, unchanged, and still replays.
    const after = (await service.events()).find(
      (event) => event.metadata.eventId === started?.metadata.eventId,
    );
    expect(after?.data).toEqual(started?.data);
  });
});
