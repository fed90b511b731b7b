import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Api, tempDir } from '../support/harness';
import { requireBuild, ROOT, run, spawnService, startExpectingRefusal } from '../support/processes';

/** API.md "Configuration": zero setup works; a bad value stops the start with one clear line. */
describe('configuration at start', () => {
  let dir: string;
  beforeAll(() => requireBuild());
  beforeEach(() => (dir = tempDir('mfa-config-')));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const start = (env: Record<string, string>) =>
    startExpectingRefusal({
      PATH: process.env.PATH,
      DATA_DIR: dir,
      PORT: '0',
      NO_COLOR: '1',
      ...env,
    });

  it.each([
    ['PORT', 'eighty', /^Configuration error: PORT: /],
    ['PORT', '70000', /^Configuration error: PORT: /],
    ['MFA_MASTER_KEY', 'too-short', /^Configuration error: MFA_MASTER_KEY: must be 32 bytes/],
    [
      'MFA_MASTER_KEY_PREVIOUS',
      'too-short',
      /^Configuration error: MFA_MASTER_KEY_PREVIOUS: must be 32 bytes/,
    ],
    ['MFA_JWT_SECRET', 'short', /^Configuration error: MFA_JWT_SECRET: must be at least 32 bytes/],
    ['MFA_JWT_PUBLIC_KEY', 'not a pem', /^Configuration error: MFA_JWT_PUBLIC_KEY: /],
    [
      'MFA_JWT_PUBLIC_KEY',
      '-----BEGIN PUBLIC KEY-----\nnot-a-key\n-----END PUBLIC KEY-----',
      /^Configuration error: MFA_JWT_PUBLIC_KEY: is not a readable public key/,
    ],
    [
      'MFA_JWT_PUBLIC_KEY',
      generateKeyPairSync('ec', { namedCurve: 'P-256' })
        .publicKey.export({ type: 'spki', format: 'pem' })
        .toString(),
      /^Configuration error: MFA_JWT_PUBLIC_KEY: must be an RSA key for RS256, not ec/,
    ],
    ['EVENTSTORE_URL', 'not a url', /^Configuration error: EVENTSTORE_URL: is not a valid URL/],
    [
      'EVENTSTORE_URL',
      'http://localhost:2113',
      /^Configuration error: EVENTSTORE_URL: must start with/,
    ],
    ['MONGODB_URL', 'postgres://x', /^Configuration error: MONGODB_URL: /],
    ['SMTP_URL', '::', /^Configuration error: SMTP_URL: /],
    ['MAIL_FROM', 'nobody', /^Configuration error: MAIL_FROM: /],
    ['MAIL_RETRY_MAX_SECONDS', '0', /^Configuration error: MAIL_RETRY_MAX_SECONDS: /],
    ['MAIL_RETRY_MAX_SECONDS', 'soon', /^Configuration error: MAIL_RETRY_MAX_SECONDS: /],
    ['WEBAUTHN_ORIGIN', 'ftp://x', /^Configuration error: WEBAUTHN_ORIGIN: /],
    ['WEBAUTHN_RP_ID', 'http://localhost', /^Configuration error: WEBAUTHN_RP_ID: /],
    ['HOST', '   ', /^Configuration error: HOST: is set but empty/],
    ['WEBAUTHN_ATTESTATION', 'indirect', /^Configuration error: WEBAUTHN_ATTESTATION: must be/],
    [
      'WEBAUTHN_ALLOWED_AAGUIDS',
      '01020304-0506-0708-0102-030405060708',
      /^Configuration error: WEBAUTHN_ALLOWED_AAGUIDS: takes effect only with WEBAUTHN_ATTESTATION=direct/,
    ],
    [
      'WEBAUTHN_ATTESTATION_ROOTS',
      'not a certificate',
      /^Configuration error: WEBAUTHN_ATTESTATION_ROOTS: takes effect only with WEBAUTHN_ATTESTATION=direct/,
    ],
  ])('%s=%j stops the start with one line naming it', async (variable, value, message) => {
    const result = await start({ [variable]: value });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toMatch(/\n\s+at .+:\d+/);
  });

  it('WEBAUTHN_ATTESTATION=direct without an allow-list stops the start, naming WEBAUTHN_ALLOWED_AAGUIDS', async () => {
    const result = await start({ WEBAUTHN_ATTESTATION: 'direct' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^Configuration error: WEBAUTHN_ALLOWED_AAGUIDS: is required with WEBAUTHN_ATTESTATION=direct/,
    );
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('with no configuration at all, starts on generated development secrets and says so', async () => {
    const result = await spawnService(dir, {}, { withSecrets: false });
    expect(result.output()).toMatch(
      /MFA_JWT_SECRET is not set: using the development secret generated now/,
    );
    expect(result.output()).toMatch(/MFA_MASTER_KEY is not set/);
    for (const name of ['jwt-secret', 'master-key']) {
      const file = join(dir, 'secrets', name);
      expect(existsSync(file)).toBe(true);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
    // The token CLI signs with that same secret, and the service accepts its token.
    const minted = await run(
      process.execPath,
      [join(ROOT, 'dist/src/cli/token.js'), '--role', 'operator'],
      {
        PATH: process.env.PATH,
        DATA_DIR: dir,
      },
    );
    expect(minted.code).toBe(0);
    const api = new Api(result.url);
    const res = await api.get('/v1/firms/acme/mfa/subscription', minted.stdout.trim());
    expect(res.status).toBe(200);
    expect(readFileSync(join(dir, 'secrets', 'jwt-secret'), 'utf8')).not.toContain(
      minted.stdout.trim(),
    );
    await result.stop();
  });
});
