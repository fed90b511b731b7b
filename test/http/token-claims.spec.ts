import { createHmac } from 'node:crypto';
import { RunningService, startService, TEST_JWT_SECRET } from '../support/harness';

/*
 * Token times (docs/security.md "Tokens"): `iat` must be a number and not in
 * the future, `MFA_JWT_MAX_AGE` bounds a token's age from its `iat`, and every
 * time check allows 5 s of clock skew, no more.
 */

const path = '/v1/firms/acme/mfa/subscription';
const now = () => Math.floor(Date.now() / 1000);

/**
 * An HS256 operator token with exactly these claims, signed by hand: jsonwebtoken's
 * `sign` refuses a non-numeric iat and replaces or drops the one given.
 */
function sign(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ role: 'operator', sub: 'ops-1', exp: now() + 300, ...claims })}`;
  const signature = createHmac('sha256', TEST_JWT_SECRET).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

async function statusOf(service: RunningService, bearer: string): Promise<number> {
  const response = await service.api.get(path, bearer);
  if (response.status === 401) {
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  }
  return response.status;
}

describe('token times without a maximum age', () => {
  let service: RunningService;
  beforeAll(async () => (service = await startService()));
  afterAll(() => service.stop());

  it.each([
    ['a string', '1700000000'],
    ['an object', { seconds: 1 }],
    ['a boolean', true],
    ['null', null],
    ['an array', [1]],
  ])('refuses an iat that is %s', async (_kind, iat) => {
    expect(await statusOf(service, sign({ iat }))).toBe(401);
  });

  it('refuses an iat more than 5 s in the future, accepts one within the tolerance', async () => {
    expect(await statusOf(service, sign({ iat: now() + 60 }))).toBe(401);
    expect(await statusOf(service, sign({ iat: now() + 2 }))).toBe(200);
  });

  it('accepts a token without iat, and an old iat, while no maximum age is set', async () => {
    expect(await statusOf(service, sign({}))).toBe(200);
    expect(await statusOf(service, sign({ iat: now() - 30 * 24 * 3600 }))).toBe(200);
  });

  it('allows 5 s of clock skew on exp, and no more', async () => {
    expect(await statusOf(service, sign({ exp: now() - 2 }))).toBe(200);
    expect(await statusOf(service, sign({ exp: now() - 10 }))).toBe(401);
  });

  it('refuses an nbf that is not a number', async () => {
    expect(await statusOf(service, sign({ nbf: 'now' }))).toBe(401);
  });
});

describe('MFA_JWT_MAX_AGE', () => {
  let service: RunningService;
  beforeAll(async () => (service = await startService({ env: { MFA_JWT_MAX_AGE: '600' } })));
  afterAll(() => service.stop());

  it('accepts a token issued within the maximum age', async () => {
    expect(await statusOf(service, sign({ iat: now() - 60 }))).toBe(200);
  });

  it('refuses a token issued longer ago, however far away its exp', async () => {
    const response = await service.api.get(
      path,
      sign({ iat: now() - 700, exp: now() + 24 * 3600 }),
    );
    expect(response.status).toBe(401);
    expect(response.body.detail).toMatch(/expired/);
  });

  it('refuses a token without iat: its age cannot be told', async () => {
    expect(await statusOf(service, sign({}))).toBe(401);
  });
});
