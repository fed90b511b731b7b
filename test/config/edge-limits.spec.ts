import { rmSync } from 'node:fs';
import { ConfigError, loadConfig } from '../../src/config/config';
import { TEST_JWT_SECRET, TEST_MASTER_KEY, tempDir } from '../support/harness';

/** The HTTP edge's limits and timeouts from the environment (docs/configuration.md). */
describe('edge limits in the configuration', () => {
  const base = {
    DATA_DIR: tempDir(),
    MFA_JWT_SECRET: TEST_JWT_SECRET,
    MFA_MASTER_KEY: TEST_MASTER_KEY,
  };
  afterAll(() => rmSync(base.DATA_DIR, { recursive: true, force: true }));
  const load = (env: Record<string, string>) => loadConfig({ ...base, ...env }).config;
  const refusal = (env: Record<string, string>) => {
    try {
      load(env);
    } catch (error) {
      if (error instanceof ConfigError) return error.message;
      throw error;
    }
    throw new Error('accepted');
  };

  it('has the documented defaults', () => {
    const config = load({});
    expect(config.http).toEqual({
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 20_000,
      keepAliveTimeoutMs: 10_000,
      maxConnections: 1000,
      trustedProxies: [],
    });
    expect(config.rateLimits).toEqual({
      perUser: { points: 30, windowSeconds: 900 },
      failuresPerCaller: { points: 1000, windowSeconds: 900 },
      failuresPerFirm: { points: 300, windowSeconds: 900 },
      perAddress: { points: 120, windowSeconds: 60 },
    });
    expect(config.jwtMaxAgeSeconds).toBeNull();
    expect(config.maxJsonDepth).toBe(32);
  });

  it('reads <count>/<seconds> and off', () => {
    const config = load({ RATE_LIMIT_PER_USER: ' 5 / 60 ', RATE_LIMIT_PER_ADDRESS: 'OFF' });
    expect(config.rateLimits.perUser).toEqual({ points: 5, windowSeconds: 60 });
    expect(config.rateLimits.perAddress).toBeNull();
  });

  it.each([
    ['RATE_LIMIT_PER_USER', '30'],
    ['RATE_LIMIT_PER_USER', '0/60'],
    ['RATE_LIMIT_FAILURES_PER_FIRM', '10/0'],
    ['RATE_LIMIT_FAILURES_PER_CALLER', '10/100000'],
    ['RATE_LIMIT_PER_ADDRESS', 'ten/60'],
    ['HTTP_MAX_CONNECTIONS', '0'],
    ['HTTP_MAX_CONNECTIONS', '1.5'],
    ['HTTP_REQUEST_TIMEOUT_SECONDS', '0'],
    ['HTTP_KEEP_ALIVE_TIMEOUT_SECONDS', '-1'],
    ['MFA_JWT_MAX_AGE', '0'],
    ['MFA_JWT_MAX_AGE', '10m'],
    ['HTTP_TRUST_PROXY', '10.0.0.0/33'],
    ['HTTP_TRUST_PROXY', '127.0.0.1, proxy.example'],
  ])('refuses %s=%s, naming the variable', (name, value) => {
    expect(refusal({ [name]: value })).toMatch(new RegExp(`^${name}: `));
  });

  it('refuses a headers timeout longer than the request timeout', () => {
    expect(
      refusal({ HTTP_HEADERS_TIMEOUT_SECONDS: '30', HTTP_REQUEST_TIMEOUT_SECONDS: '20' }),
    ).toMatch(
      /^HTTP_HEADERS_TIMEOUT_SECONDS: must not be longer than HTTP_REQUEST_TIMEOUT_SECONDS/,
    );
  });

  it('reads trusted proxies and the maximum token age', () => {
    const config = load({
      HTTP_TRUST_PROXY: '10.0.0.1, 192.168.0.0/16,::1',
      MFA_JWT_MAX_AGE: '600',
    });
    expect(config.http.trustedProxies).toEqual(['10.0.0.1', '192.168.0.0/16', '::1']);
    expect(config.jwtMaxAgeSeconds).toBe(600);
  });
});
