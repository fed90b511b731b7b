import { execFileSync } from 'node:child_process';
import { matchTotp } from '../../src/verification/totp';

/**
 * RFC 6238 Appendix B, SHA-1 column: the seed is the ASCII string
 * "12345678901234567890". The RFC lists 8-digit codes; the 6-digit code of the
 * same moment is their last six digits (truncation is modulo 10^digits).
 */
const SEED_BASE32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const vectors: Array<[number, string]> = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];

describe('TOTP codes (RFC 6238, SHA-1, 6 digits, 30 s)', () => {
  it.each(vectors)('at T=%i the RFC code %s matches its time step', (seconds, rfcCode) => {
    const at = new Date(seconds * 1000);
    expect(matchTotp(SEED_BASE32, rfcCode.slice(-6), at)).toBe(Math.floor(seconds / 30));
  });

  it.each(vectors)('oathtool agrees with the RFC at T=%i', (seconds, rfcCode) => {
    const code = execFileSync('oathtool', ['--totp', '-b', '-N', `@${seconds}`, SEED_BASE32], {
      encoding: 'utf8',
    }).trim();
    expect(code).toBe(rfcCode.slice(-6));
  });

  it('accepts one step either side and no further', () => {
    const at = new Date(1111111111 * 1000);
    const step = Math.floor(1111111111 / 30);
    const codeAt = (s: number) =>
      execFileSync('oathtool', ['--totp', '-b', '-N', `@${s * 30}`, SEED_BASE32], {
        encoding: 'utf8',
      }).trim();
    expect(matchTotp(SEED_BASE32, codeAt(step - 1), at)).toBe(step - 1);
    expect(matchTotp(SEED_BASE32, codeAt(step + 1), at)).toBe(step + 1);
    expect(matchTotp(SEED_BASE32, codeAt(step - 2), at)).toBeNull();
    expect(matchTotp(SEED_BASE32, codeAt(step + 2), at)).toBeNull();
  });

  it('malformed codes match nothing instead of throwing', () => {
    const at = new Date(59 * 1000);
    for (const code of ['', '28708', '2870822', 'abcdef', '28 708']) {
      expect(matchTotp(SEED_BASE32, code, at)).toBeNull();
    }
  });
});
