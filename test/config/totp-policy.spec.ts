import { rmSync } from 'node:fs';
import { ConfigError, loadConfig } from '../../src/config/config';
import { TEST_JWT_SECRET, TEST_MASTER_KEY, tempDir } from '../support/harness';

/** The TOTP guessing budget and the enrollment caps (docs/security.md): defaults and refusals. */
describe('MFA_TOTP_* and MFA_MAX_* variables', () => {
  const base = {
    DATA_DIR: tempDir(),
    MFA_JWT_SECRET: TEST_JWT_SECRET,
    MFA_MASTER_KEY: TEST_MASTER_KEY,
  };
  afterAll(() => rmSync(base.DATA_DIR, { recursive: true, force: true }));
  const totp = (env: Record<string, string>) => loadConfig({ ...base, ...env }).config.totp;

  it('default to a lock every 5 failures, 15 minutes first, a block at 20, 5 apps, 3 pending', () => {
    expect(totp({})).toEqual({
      lockout: {
        lockAfter: 5,
        firstLockMs: 15 * 60_000,
        maxLockMs: 24 * 3_600_000,
        maxFailures: 20,
      },
      maxFactors: 5,
      maxPendingEnrollments: 3,
    });
    expect(
      totp({ MFA_TOTP_LOCK_AFTER: '3', MFA_TOTP_LOCK_MINUTES: '1', MFA_TOTP_MAX_FAILURES: '100' })
        .lockout,
    ).toMatchObject({ lockAfter: 3, firstLockMs: 60_000, maxFailures: 100 });
  });

  it.each([
    [{ MFA_TOTP_MAX_FAILURES: '101' }, 'MFA_TOTP_MAX_FAILURES', /between 1 and 100/],
    [{ MFA_TOTP_MAX_FAILURES: '4' }, 'MFA_TOTP_MAX_FAILURES', /at least MFA_TOTP_LOCK_AFTER/],
    [{ MFA_TOTP_LOCK_AFTER: '0' }, 'MFA_TOTP_LOCK_AFTER', /between 1 and 100/],
    [{ MFA_TOTP_LOCK_MINUTES: '1.5' }, 'MFA_TOTP_LOCK_MINUTES', /whole number/],
    [{ MFA_MAX_TOTP_FACTORS: 'five' }, 'MFA_MAX_TOTP_FACTORS', /whole number/],
    [{ MFA_MAX_PENDING_ENROLLMENTS: '0' }, 'MFA_MAX_PENDING_ENROLLMENTS', /between 1 and 20/],
  ])('refuses %j, naming %s', (env, variable, message) => {
    let error: unknown;
    try {
      totp(env);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(new RegExp(`^${variable}: `));
    expect((error as Error).message).toMatch(message);
  });
});
