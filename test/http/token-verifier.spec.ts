import { createHmac } from 'node:crypto';
import { loadConfig } from '../../src/config/config';
import { TokenVerifier } from '../../src/http/auth';
import { TEST_JWT_SECRET, TEST_MASTER_KEY } from '../support/harness';

/*
 * A bearer's signature is checked once and its principal kept (the login path
 * sees the same token at every request), but every time rule still holds at
 * each request (docs/security.md "Tokens"): exp and MFA_JWT_MAX_AGE with 5 s of
 * skew, nbf likewise. The clock is Date.now, as jsonwebtoken reads it.
 */

const T0 = 1_900_000_000;

function verifier(env: Record<string, string> = {}) {
  const { config } = loadConfig({
    MFA_JWT_SECRET: TEST_JWT_SECRET,
    MFA_MASTER_KEY: TEST_MASTER_KEY,
    DATA_DIR: '/tmp/unused',
    ...env,
  });
  return new TokenVerifier(config);
}

/** An HS256 token with exactly these claims (jsonwebtoken's sign would set its own iat). */
function signed(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  const signature = createHmac('sha256', TEST_JWT_SECRET).update(unsigned).digest('base64url');
  return `Bearer ${unsigned}.${signature}`;
}
const bearer = (claims: Record<string, unknown>) =>
  signed({ role: 'operator', sub: 'ops-1', ...claims });

describe('TokenVerifier, a token seen again', () => {
  let now = T0;
  beforeEach(() => {
    now = T0;
    jest.spyOn(Date, 'now').mockImplementation(() => now * 1000);
  });
  afterEach(() => jest.restoreAllMocks());

  const outcome = (verify: TokenVerifier, header: string) => {
    const result = verify.authenticate(header);
    return 'principal' in result ? 'accepted' : result.refusal.problem.detail;
  };

  it('is refused once it expired (5 s of skew), though it was accepted before', () => {
    const verify = verifier();
    const token = bearer({ exp: T0 + 60, iat: T0 });
    expect(outcome(verify, token)).toBe('accepted');
    now = T0 + 64;
    expect(outcome(verify, token)).toBe('accepted');
    now = T0 + 65;
    expect(outcome(verify, token)).toBe('The token has expired.');
    expect(outcome(verify, token)).toBe('The token has expired.');
  });

  it('is refused once older than MFA_JWT_MAX_AGE, however far its exp', () => {
    const verify = verifier({ MFA_JWT_MAX_AGE: '600' });
    const token = bearer({ exp: T0 + 86_400, iat: T0 });
    expect(outcome(verify, token)).toBe('accepted');
    now = T0 + 604;
    expect(outcome(verify, token)).toBe('accepted');
    now = T0 + 605;
    expect(outcome(verify, token)).toBe('The token has expired.');
  });

  it('is refused before its nbf (5 s of skew) and accepted from then on', () => {
    const verify = verifier();
    const token = bearer({ exp: T0 + 600, nbf: T0 + 60 });
    expect(outcome(verify, token)).toBe('The token is not valid.');
    now = T0 + 55;
    expect(outcome(verify, token)).toBe('accepted');
    expect(outcome(verify, token)).toBe('accepted');
  });

  it('with one character changed in its signature is refused, after the original was accepted', () => {
    const verify = verifier();
    const token = bearer({ exp: T0 + 600 });
    expect(outcome(verify, token)).toBe('accepted');
    const last = token.slice(-1);
    const forged = `${token.slice(0, -1)}${last === 'A' ? 'B' : 'A'}`;
    expect(outcome(verify, forged)).toBe('The token is not valid.');
  });

  it('keeps its principal: the same role, subject and firm', () => {
    const verify = verifier();
    const token = signed({ role: 'superuser', sub: 'admin-1', firm: 'acme', exp: T0 + 600 });
    const first = verify.authenticate(token);
    const again = verify.authenticate(token);
    expect(again).toEqual(first);
    expect(again).toEqual({ principal: { id: 'admin-1', role: 'superuser', firm: 'acme' } });
  });
});
