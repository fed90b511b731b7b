import fc from 'fast-check';
import { parseURI } from '@otplib/uri';
import { keyUriIssuer, totpKeyUri } from '../../src/enrollment/totp-key-uri';

/*
 * The Key URI format read independently: `new URL` for the parameters, and
 * the label as the format defines it (percent-decoded, split at the first
 * colon). The issuer prefix must equal the `issuer` parameter and the account
 * must come back whole, whatever the names hold.
 */
function read(uri: string) {
  const prefix = 'otpauth://totp/';
  expect(uri.startsWith(prefix)).toBe(true);
  const label = decodeURIComponent(uri.slice(prefix.length, uri.indexOf('?')));
  const colon = label.indexOf(':');
  const params = new URL(uri).searchParams;
  return {
    issuerPrefix: colon === -1 ? null : label.slice(0, colon),
    account: colon === -1 ? label : label.slice(colon + 1),
    issuer: params.get('issuer'),
    secret: params.get('secret'),
  };
}

const SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';

describe('the TOTP key URI', () => {
  it.each([
    ['Acme: Legal MFA', 'ann@lawfirm.example', 'Acme Legal MFA'],
    ['Müller & Söhne', 'jörg@müller.example', 'Müller & Söhne'],
    ['a@b', 'a:b@c', 'a@b'],
    ['MFA Service', 'user:with:colons@x.example', 'MFA Service'],
    ['100% sure? #1 / MFA', 'a+b=c&d@x.example', '100% sure? #1 / MFA'],
  ])(
    'issuer %j, account %j: prefix and parameter say %j, the account stays whole',
    (rp, account, issuer) => {
      const uri = totpKeyUri({ issuer: rp, account, secret: SECRET });
      expect(read(uri)).toEqual({ issuerPrefix: issuer, account, issuer, secret: SECRET });
      // otplib's own parser reads the same label and issuer.
      const parsed = parseURI(uri);
      expect(parsed.label).toBe(`${issuer}:${account}`);
      expect(parsed.params).toMatchObject({ issuer, secret: SECRET });
    },
  );

  it('writes the colon separator literally and an account colon encoded', () => {
    expect(totpKeyUri({ issuer: 'Acme: Legal', account: 'a:b@c', secret: SECRET })).toBe(
      `otpauth://totp/Acme%20Legal:a%3Ab%40c?secret=${SECRET}&issuer=Acme%20Legal`,
    );
  });

  it('gives the account alone and no issuer when nothing is left of the name', () => {
    const uri = totpKeyUri({ issuer: ' : ', account: 'ann@x.example', secret: SECRET });
    expect(uri).toBe(`otpauth://totp/ann%40x.example?secret=${SECRET}`);
  });

  it('holds for any names: prefix equals parameter, account intact', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', minLength: 1 }),
        fc.string({ unit: 'grapheme' }),
        (rp, account) => {
          const issuer = keyUriIssuer(rp);
          fc.pre(issuer !== '');
          const found = read(totpKeyUri({ issuer: rp, account, secret: SECRET }));
          expect(found).toEqual({ issuerPrefix: issuer, account, issuer, secret: SECRET });
          expect(issuer).not.toContain(':');
        },
      ),
      { numRuns: 1000 },
    );
  });
});
