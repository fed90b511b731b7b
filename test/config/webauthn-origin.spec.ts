import { rmSync } from 'node:fs';
import { loadConfig } from '../../src/config/config';
import { TEST_JWT_SECRET, TEST_MASTER_KEY, tempDir } from '../support/harness';

/** The relying party's origin is compared with what the browser signs: the bare origin. */
describe('WEBAUTHN_ORIGIN', () => {
  const base = {
    DATA_DIR: tempDir(),
    MFA_JWT_SECRET: TEST_JWT_SECRET,
    MFA_MASTER_KEY: TEST_MASTER_KEY,
  };
  afterAll(() => rmSync(base.DATA_DIR, { recursive: true, force: true }));

  it.each([
    ['https://mfa.example/', 'https://mfa.example'],
    ['https://mfa.example:8443/login?x=1', 'https://mfa.example:8443'],
    ['HTTP://LOCALHOST:3000', 'http://localhost:3000'],
  ])('%s is used as %s', (value, origin) => {
    expect(loadConfig({ ...base, WEBAUTHN_ORIGIN: value }).config.webauthn.origin).toBe(origin);
  });

  it('defaults to http://localhost:3000', () => {
    expect(loadConfig(base).config.webauthn.origin).toBe('http://localhost:3000');
  });
});
