import { startService, TestClock } from '../support/harness';
import { activeFirm, expectOk, host, mfaPath, oathtool, registerUser } from '../support/mfa';

/*
 * The otpauth URI of a TOTP enrollment, read as an authenticator app reads
 * it, by the Key URI format (Google Authenticator's "Key Uri Format"): the
 * path after `otpauth://totp/` percent-decoded, split at its first colon into
 * the issuer prefix and the account; the `issuer` parameter must equal the
 * prefix. A relying-party name with a colon ("Acme: Legal MFA") made the
 * prefix read "Acme" while the parameter said "Acme: Legal MFA".
 */

/** The label and parameters as the Key URI format defines them, parsed independently of the service. */
function readKeyUri(otpauthUri: string) {
  const url = new URL(otpauthUri);
  expect(url.protocol).toBe('otpauth:');
  expect(url.host).toBe('totp');
  const prefix = 'otpauth://totp/';
  expect(otpauthUri.startsWith(prefix)).toBe(true);
  const path = otpauthUri.slice(prefix.length, otpauthUri.indexOf('?'));
  const label = decodeURIComponent(path);
  const colon = label.indexOf(':');
  return {
    issuerPrefix: colon === -1 ? null : label.slice(0, colon),
    account: colon === -1 ? label : label.slice(colon + 1),
    issuer: url.searchParams.get('issuer'),
    secret: url.searchParams.get('secret'),
  };
}

describe('The otpauth URI of a TOTP enrollment', () => {
  const clock = new TestClock(new Date('2026-03-02T09:00:00.000Z'));

  it.each([
    ['Acme: Legal MFA', 'Acme Legal MFA'],
    ['Müller & Söhne', 'Müller & Söhne'],
    ['a@b', 'a@b'],
    ['Ｍｉｔｔｅ：Ｓｅｃｕｒｅ', 'Ｍｉｔｔｅ：Ｓｅｃｕｒｅ'],
    ['  Acme :: MFA ', 'Acme MFA'],
  ])(
    'names the relying party %j as the issuer %j in the label and the parameter alike',
    async (relyingPartyName, issuer) => {
      const service = await startService({ clock, env: { WEBAUTHN_RP_NAME: relyingPartyName } });
      try {
        const api = service.api;
        await activeFirm(api, 'acme', 2);
        const email = 'ann.o+mfa@lawfirm.example';
        await registerUser(api, 'acme', 'ann', { email });
        const started = await api.post(`${mfaPath('acme', 'ann')}/totp/enrollment`, host, {
          label: 'Work: phone @home',
        });
        expectOk(started, 201);
        const read = readKeyUri(started.body.otpauthUri);
        expect(read).toEqual({ issuerPrefix: issuer, account: email, issuer, secret: read.secret });
        expect(read.secret).toMatch(/^[A-Z2-7]{32}$/);

        // The secret the app reads confirms the enrollment with oathtool's code.
        const confirmed = await api.post(
          `${mfaPath('acme', 'ann')}/totp/enrollment/${started.body.enrollmentId}/confirm`,
          host,
          { code: oathtool(read.secret!, clock.now()) },
        );
        expectOk(confirmed);

        // WebAuthn keeps the relying-party name as configured: only the Key URI format forbids colons.
        await registerUser(api, 'acme', 'bob');
        const options = await api.post(
          `${mfaPath('acme', 'bob')}/webauthn/registration/options`,
          host,
          {},
        );
        expectOk(options, options.status === 201 ? 201 : 200);
        expect(options.body.rp.name).toBe(relyingPartyName.trim());
      } finally {
        await service.stop();
      }
    },
  );
});
