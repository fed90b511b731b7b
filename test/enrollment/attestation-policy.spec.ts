import { isoCBOR } from '@simplewebauthn/server/helpers';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/config-error';
import {
  ANY_AUTHENTICATOR,
  AttestationPolicy,
  attestationPolicyFromEnv,
} from '../../src/config/attestation';
import { admitAuthenticator, VerifiedAttestation } from '../../src/enrollment/attestation-policy';
import { DomainError } from '../../src/shared/domain-error';
import { tempDir } from '../support/harness';

/*
 * Issue 11 item 12, DESIGN §2.4: the attestation policy as a function of the
 * configuration and of what @simplewebauthn/server verified. Certificates
 * come from openssl; attestation objects are CBOR maps as WebAuthn §6.5
 * shapes them ({ fmt, attStmt, authData }).
 */
const YUBIKEY_LIKE = 'ee882879-721c-4913-9775-3dfcce97072a';
const OTHER_MODEL = '01020304-0506-0708-0102-030405060708';
const NO_MODEL = '00000000-0000-0000-0000-000000000000';

describe('attestation policy configuration', () => {
  const load = (env: Record<string, string>) => {
    const warnings: string[] = [];
    return { policy: attestationPolicyFromEnv(env, warnings), warnings };
  };
  const refusal = (env: Record<string, string>) => {
    try {
      load(env);
    } catch (error) {
      if (error instanceof ConfigError) return { variable: error.variable, problem: error.problem };
      throw error;
    }
    throw new Error('no ConfigError');
  };

  it('accepts any authenticator by default, asking for no attestation', () => {
    expect(load({})).toEqual({ policy: ANY_AUTHENTICATOR, warnings: [] });
    expect(load({ WEBAUTHN_ATTESTATION: 'none' }).policy).toEqual(ANY_AUTHENTICATOR);
    expect(ANY_AUTHENTICATOR.conveyance).toBe('none');
  });

  it('direct with an allow-list: AAGUIDs lower-cased, duplicates once, a warning without roots', () => {
    const { policy, warnings } = load({
      WEBAUTHN_ATTESTATION: 'DIRECT',
      WEBAUTHN_ALLOWED_AAGUIDS: ` ${YUBIKEY_LIKE.toUpperCase()} ,${OTHER_MODEL},${YUBIKEY_LIKE}`,
    });
    expect(policy).toEqual({
      conveyance: 'direct',
      allowedAaguids: [YUBIKEY_LIKE, OTHER_MODEL],
      roots: [],
    });
    expect(warnings).toEqual([expect.stringMatching(/without WEBAUTHN_ATTESTATION_ROOTS/)]);
  });

  it.each([
    [{ WEBAUTHN_ATTESTATION: 'indirect' }, 'WEBAUTHN_ATTESTATION', /must be none or direct/],
    [{ WEBAUTHN_ATTESTATION: ' ' }, 'WEBAUTHN_ATTESTATION', /is set but empty/],
    [{ WEBAUTHN_ATTESTATION: 'direct' }, 'WEBAUTHN_ALLOWED_AAGUIDS', /is required with/],
    [
      { WEBAUTHN_ALLOWED_AAGUIDS: YUBIKEY_LIKE },
      'WEBAUTHN_ALLOWED_AAGUIDS',
      /only with WEBAUTHN_ATTESTATION=direct/,
    ],
    [
      { WEBAUTHN_ATTESTATION: 'none', WEBAUTHN_ALLOWED_AAGUIDS: YUBIKEY_LIKE },
      'WEBAUTHN_ALLOWED_AAGUIDS',
      /only with WEBAUTHN_ATTESTATION=direct/,
    ],
    [
      { WEBAUTHN_ATTESTATION_ROOTS: '-----BEGIN CERTIFICATE-----' },
      'WEBAUTHN_ATTESTATION_ROOTS',
      /only with WEBAUTHN_ATTESTATION=direct/,
    ],
    [
      { WEBAUTHN_ATTESTATION: 'direct', WEBAUTHN_ALLOWED_AAGUIDS: `${YUBIKEY_LIKE},,` },
      'WEBAUTHN_ALLOWED_AAGUIDS',
      /"" is not an AAGUID/,
    ],
    [
      { WEBAUTHN_ATTESTATION: 'direct', WEBAUTHN_ALLOWED_AAGUIDS: 'YubiKey 5' },
      'WEBAUTHN_ALLOWED_AAGUIDS',
      /"YubiKey 5" is not an AAGUID/,
    ],
    [
      { WEBAUTHN_ATTESTATION: 'direct', WEBAUTHN_ALLOWED_AAGUIDS: NO_MODEL },
      'WEBAUTHN_ALLOWED_AAGUIDS',
      /all-zero AAGUID names no model/,
    ],
    [
      {
        WEBAUTHN_ATTESTATION: 'direct',
        WEBAUTHN_ALLOWED_AAGUIDS: YUBIKEY_LIKE,
        WEBAUTHN_ATTESTATION_ROOTS: 'not a certificate',
      },
      'WEBAUTHN_ATTESTATION_ROOTS',
      /PEM "BEGIN CERTIFICATE" blocks/,
    ],
    [
      {
        WEBAUTHN_ATTESTATION: 'direct',
        WEBAUTHN_ALLOWED_AAGUIDS: YUBIKEY_LIKE,
        WEBAUTHN_ATTESTATION_ROOTS: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----',
      },
      'WEBAUTHN_ATTESTATION_ROOTS',
      /certificate 1 is not a readable X.509 certificate/,
    ],
  ])('%j is a configuration error naming %s', (env, variable, problem) => {
    const found = refusal(env);
    expect(found.variable).toBe(variable);
    expect(found.problem).toMatch(problem);
  });
});

describe('admitting an authenticator', () => {
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  beforeAll(() => {
    dir = tempDir('mfa-attestation-pki-');
    pki = makePki(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const direct = (roots: string[] = []): AttestationPolicy => ({
    conveyance: 'direct',
    allowedAaguids: [YUBIKEY_LIKE],
    roots,
  });

  async function decision(policy: AttestationPolicy, attestation: VerifiedAttestation) {
    try {
      await admitAuthenticator(policy, attestation);
      return 'admitted';
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      expect(error).toMatchObject({ code: 'authenticator-not-allowed', kind: 'conflict' });
      expect(error.extensions).toEqual({
        aaguid: attestation.aaguid,
        attestationFormat: attestation.fmt,
      });
      return error.message;
    }
  }

  it('the default admits every authenticator, attested or not', async () => {
    expect(await decision(ANY_AUTHENTICATOR, attested('none', NO_MODEL, []))).toBe('admitted');
    expect(
      await decision(ANY_AUTHENTICATOR, attested('packed', OTHER_MODEL, [pki.selfSigned])),
    ).toBe('admitted');
  });

  it('direct admits an allowed model whose statement carries a certificate', async () => {
    expect(await decision(direct(), attested('packed', YUBIKEY_LIKE, [pki.leaf]))).toBe('admitted');
    expect(
      await decision(direct(), attested('packed', YUBIKEY_LIKE.toUpperCase(), [pki.leaf])),
    ).toBe('admitted');
  });

  it.each([
    ['format none', () => attested('none', NO_MODEL, undefined), /gave no attestation/],
    [
      'self attestation (no certificate)',
      () => attested('packed', YUBIKEY_LIKE, undefined),
      /attested itself/,
    ],
    ['a U2F key (all-zero AAGUID)', () => attested('fido-u2f', NO_MODEL, [pki.leaf]), /names no/],
    [
      'a model off the allow-list',
      () => attested('packed', OTHER_MODEL, [pki.leaf]),
      new RegExp(`AAGUID ${OTHER_MODEL}\\) is not on`),
    ],
  ])('direct refuses %s', async (_case, attestation, why) => {
    expect(await decision(direct(), attestation())).toMatch(why);
  });

  it('with roots, admits a certificate chained to one of them and refuses any other', async () => {
    const rooted = direct([pki.otherRoot, pki.root]);
    expect(await decision(rooted, attested('packed', YUBIKEY_LIKE, [pki.leaf]))).toBe('admitted');
    const chainsToNone = /does not chain to any of the configured roots/;
    expect(
      await decision(direct([pki.otherRoot]), attested('packed', YUBIKEY_LIKE, [pki.leaf])),
    ).toMatch(chainsToNone);
    expect(await decision(rooted, attested('packed', YUBIKEY_LIKE, [pki.selfSigned]))).toMatch(
      chainsToNone,
    );
  });

  it('a root file as an operator would paste it is read whole', () => {
    const warnings: string[] = [];
    const policy = attestationPolicyFromEnv(
      {
        WEBAUTHN_ATTESTATION: 'direct',
        WEBAUTHN_ALLOWED_AAGUIDS: YUBIKEY_LIKE,
        WEBAUTHN_ATTESTATION_ROOTS: `# Example roots\n${pki.root}\n${pki.otherRoot}`,
      },
      warnings,
    );
    expect(policy.roots).toHaveLength(2);
    expect(warnings).toEqual([]);
  });
});

/** A registration as @simplewebauthn/server reports a verified one: format, AAGUID, CBOR object. */
function attested(fmt: string, aaguid: string, x5c: Uint8Array[] | undefined): VerifiedAttestation {
  const attStmt = new Map<string, unknown>();
  if (fmt !== 'none') {
    attStmt.set('alg', -7);
    attStmt.set('sig', new Uint8Array(64));
    if (x5c) attStmt.set('x5c', x5c);
  }
  const attestationObject = isoCBOR.encode(
    new Map<string, unknown>([
      ['fmt', fmt],
      ['attStmt', attStmt],
      ['authData', new Uint8Array(37)],
    ]) as never,
  );
  return { fmt: fmt as VerifiedAttestation['fmt'], aaguid, attestationObject };
}

/**
 * A root, a leaf it signed (as a manufacturer's attestation certificate), an
 * unrelated root, and a self-signed leaf: DER for x5c, PEM for the policy.
 */
function makePki(dir: string) {
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const root = (name: string) =>
    openssl(
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-subj',
      `/C=US/O=Example/CN=${name}`,
      '-days',
      '2',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    );
  root('root');
  root('other-root');
  openssl(
    'req',
    ...ec,
    '-keyout',
    'leaf.key',
    '-out',
    'leaf.csr',
    '-subj',
    '/C=US/O=Example/OU=Authenticator Attestation/CN=Leaf',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'root.pem',
    '-CAkey',
    'root.key',
    '-CAcreateserial',
    '-out',
    'leaf.pem',
    '-days',
    '1',
  );
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'self.key',
    '-out',
    'self.pem',
    '-subj',
    '/C=US/O=Example/OU=Authenticator Attestation/CN=Self',
    '-days',
    '1',
  );
  const pem = (name: string) => readFileSync(join(dir, `${name}.pem`), 'utf8');
  const der = (name: string) => new Uint8Array(new X509Certificate(pem(name)).raw);
  return {
    root: pem('root'),
    otherRoot: pem('other-root'),
    leaf: der('leaf'),
    selfSigned: der('self'),
  };
}
