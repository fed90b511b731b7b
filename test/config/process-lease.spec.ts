import { rmSync } from 'node:fs';
import { ConfigError, loadConfig } from '../../src/config/config';
import { TEST_JWT_SECRET, TEST_MASTER_KEY, tempDir } from '../support/harness';

/** Process managers' leases (docs/decisions/0014): seconds, not minutes, and room for a failed renewal. */
describe('PROCESS_LEASE_SECONDS and PROCESS_LEASE_RENEW_SECONDS', () => {
  const base = {
    DATA_DIR: tempDir(),
    MFA_JWT_SECRET: TEST_JWT_SECRET,
    MFA_MASTER_KEY: TEST_MASTER_KEY,
  };
  afterAll(() => rmSync(base.DATA_DIR, { recursive: true, force: true }));
  const lease = (env: Record<string, string>) =>
    loadConfig({ ...base, ...env }).config.processLease;

  it('default to a 10 s lease renewed every 2 s', () => {
    expect(lease({})).toEqual({ ttlMs: 10_000, renewEveryMs: 2_000 });
  });

  it('renew a short lease five times over its life unless told otherwise', () => {
    expect(lease({ PROCESS_LEASE_SECONDS: '2' })).toEqual({ ttlMs: 2_000, renewEveryMs: 400 });
    expect(lease({ PROCESS_LEASE_SECONDS: '30', PROCESS_LEASE_RENEW_SECONDS: '5' })).toEqual({
      ttlMs: 30_000,
      renewEveryMs: 5_000,
    });
  });

  it.each([
    [{ PROCESS_LEASE_SECONDS: '0' }, 'PROCESS_LEASE_SECONDS', /between 0 and 86400/],
    [{ PROCESS_LEASE_SECONDS: '10s' }, 'PROCESS_LEASE_SECONDS', /between 0 and 86400/],
    [{ PROCESS_LEASE_RENEW_SECONDS: '4' }, 'PROCESS_LEASE_RENEW_SECONDS', /a third of .* \(10\)/],
    [
      { PROCESS_LEASE_SECONDS: '3', PROCESS_LEASE_RENEW_SECONDS: '1.5' },
      'PROCESS_LEASE_RENEW_SECONDS',
      /a third/,
    ],
  ])('refuses %j, naming %s', (env, variable, message) => {
    let error: unknown;
    try {
      lease(env);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message).toMatch(message);
  });
});
