import { rmSync } from 'node:fs';
import { ConfigError, loadConfig } from '../../src/config/config';
import { TEST_JWT_SECRET, TEST_MASTER_KEY, tempDir } from '../support/harness';

/** When a firm's chain heads are anchored (ADR 0017, docs/configuration.md). */
describe('AUDIT_ANCHOR_EVERY and AUDIT_ANCHOR_SECONDS', () => {
  const base = {
    DATA_DIR: tempDir(),
    MFA_JWT_SECRET: TEST_JWT_SECRET,
    MFA_MASTER_KEY: TEST_MASTER_KEY,
  };
  afterAll(() => rmSync(base.DATA_DIR, { recursive: true, force: true }));
  const anchors = (env: Record<string, string>) =>
    loadConfig({ ...base, ...env }).config.auditAnchors;

  it('default to every 100 events of a firm, and at most a minute after one', () => {
    expect(anchors({})).toEqual({ everyEvents: 100, maxDelayMs: 60_000 });
    expect(anchors({ AUDIT_ANCHOR_EVERY: '1', AUDIT_ANCHOR_SECONDS: '0.5' })).toEqual({
      everyEvents: 1,
      maxDelayMs: 500,
    });
  });

  it.each([
    [{ AUDIT_ANCHOR_EVERY: '0' }, 'AUDIT_ANCHOR_EVERY', /whole number between 1 and 1000000/],
    [{ AUDIT_ANCHOR_EVERY: '1e3' }, 'AUDIT_ANCHOR_EVERY', /whole number/],
    [{ AUDIT_ANCHOR_EVERY: ' ' }, 'AUDIT_ANCHOR_EVERY', /set but empty/],
    [{ AUDIT_ANCHOR_SECONDS: '0' }, 'AUDIT_ANCHOR_SECONDS', /between 0 and 86400/],
    [{ AUDIT_ANCHOR_SECONDS: '1m' }, 'AUDIT_ANCHOR_SECONDS', /between 0 and 86400/],
  ])('refuses %j, naming %s', (env, variable, message) => {
    let error: unknown;
    try {
      anchors(env);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message).toMatch(message);
  });
});
