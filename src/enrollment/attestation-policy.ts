import {
  convertCertBufferToPEM,
  decodeAttestationObject,
  validateCertificatePath,
} from '@simplewebauthn/server/helpers';
import type { VerifiedRegistrationResponse } from '@simplewebauthn/server';
import { X509Certificate } from 'node:crypto';
import { ConfigError } from '../config/config-error';
import { conflict, DomainError } from '../shared/domain-error';

/*
 * Which security keys a deployment admits (DESIGN §2.4: "any authenticator by
 * default; a deployment may require verified attestation from an allow-list
 * of authenticator models"). Pure apart from the certificate path check, which
 * is @simplewebauthn/server's own. docs/configuration.md, "Attestation policy",
 * says what "verified" means here and where it stops.
 */

/** What the relying party asks the browser for (WebAuthn §5.4.7 attestation conveyance). */
export type AttestationConveyance = 'none' | 'direct';

export interface AttestationPolicy {
  /**
   * What the registration options ask for (`attestationType`). `none`: any
   * authenticator, no attestation. `direct`: only allowed models.
   */
  conveyance: AttestationConveyance;
  /** Lower-case AAGUIDs (8-4-4-4-12 hex) admitted under `direct`; empty under `none`. */
  allowedAaguids: readonly string[];
  /**
   * PEM root certificates the attestation certificate must chain to, under
   * `direct`. Empty: the chain is not checked, and the AAGUID is the
   * authenticator's own claim (see the docs).
   */
  roots: readonly string[];
}

/** The default: as most relying parties do, no attestation and any authenticator. */
export const ANY_AUTHENTICATOR: AttestationPolicy = {
  conveyance: 'none',
  allowedAaguids: [],
  roots: [],
};

const AAGUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NO_MODEL = '00000000-0000-0000-0000-000000000000';
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The policy from WEBAUTHN_ATTESTATION (`none` | `direct`, default `none`),
 * WEBAUTHN_ALLOWED_AAGUIDS (comma-separated AAGUIDs, required with and only
 * with `direct`) and WEBAUTHN_ATTESTATION_ROOTS (PEM certificates, only with
 * `direct`). Throws a ConfigError naming the variable; pushes a warning when
 * `direct` comes without roots.
 */
export function attestationPolicyFromEnv(
  env: Record<string, string | undefined>,
  warnings: string[],
): AttestationPolicy {
  const conveyance = setting(env, 'WEBAUTHN_ATTESTATION')?.toLowerCase() ?? 'none';
  if (conveyance !== 'none' && conveyance !== 'direct') {
    throw new ConfigError('WEBAUTHN_ATTESTATION', `must be none or direct, not "${conveyance}"`);
  }
  const aaguids = setting(env, 'WEBAUTHN_ALLOWED_AAGUIDS');
  const roots = setting(env, 'WEBAUTHN_ATTESTATION_ROOTS');
  if (conveyance === 'none') {
    // An allow-list that silently does nothing would let an operator believe keys are filtered.
    for (const [name, value] of [
      ['WEBAUTHN_ALLOWED_AAGUIDS', aaguids],
      ['WEBAUTHN_ATTESTATION_ROOTS', roots],
    ] as const) {
      if (value !== undefined) {
        throw new ConfigError(name, 'takes effect only with WEBAUTHN_ATTESTATION=direct');
      }
    }
    return ANY_AUTHENTICATOR;
  }
  if (aaguids === undefined) {
    throw new ConfigError(
      'WEBAUTHN_ALLOWED_AAGUIDS',
      'is required with WEBAUTHN_ATTESTATION=direct: the AAGUIDs of the authenticator models to admit, comma-separated',
    );
  }
  const policy: AttestationPolicy = {
    conveyance,
    allowedAaguids: [...new Set(aaguids.split(',').map(aaguidOf))],
    roots: roots === undefined ? [] : rootsOf(roots),
  };
  if (policy.roots.length === 0) {
    warnings.push(
      "WEBAUTHN_ATTESTATION=direct without WEBAUTHN_ATTESTATION_ROOTS: the attestation signature is verified, but no root vouches for its certificate, so an AAGUID is the authenticator's own claim. Set the manufacturers' roots to make the allow-list hold against forged authenticators.",
    );
  }
  return policy;
}

/**
 * The parts of @simplewebauthn/server's verified `registrationInfo` the policy
 * reads: `fmt` (the statement format: `none`, `packed`, `fido-u2f`, `tpm`,
 * `apple`, ...), `aaguid` (from the authenticator data, lower-case
 * 8-4-4-4-12) and `attestationObject` (CBOR, for the statement's x5c).
 */
export type VerifiedAttestation = Pick<
  NonNullable<VerifiedRegistrationResponse['registrationInfo']>,
  'fmt' | 'aaguid' | 'attestationObject'
>;

/**
 * Admits the authenticator, or throws 409 `authenticator-not-allowed` with
 * the AAGUID and format as problem members. Call it only on a registration
 * `verifyRegistrationResponse` verified: the library has then checked the
 * statement's signature for its format, so what is left is whose statement
 * it is. Under `direct`, refused: format `none` (no statement), a statement
 * without a certificate (self attestation), the all-zero AAGUID (U2F keys name
 * no model), an AAGUID off the allow-list, and, with roots configured, a
 * certificate chain that reaches none of them.
 */
export async function admitAuthenticator(
  policy: AttestationPolicy,
  attestation: VerifiedAttestation,
): Promise<void> {
  if (policy.conveyance === 'none') return;
  const { fmt, aaguid } = attestation;
  const refuse = (why: string) => notAllowed(why, attestation);
  if (fmt === 'none') {
    throw refuse(
      'This security key gave no attestation (format none); only attested, allowed models are admitted here.',
    );
  }
  const x5c = decodeAttestationObject(attestation.attestationObject).get('attStmt').get('x5c');
  if (!x5c || x5c.length === 0) {
    throw refuse(
      `This security key attested itself (format ${fmt}, no certificate), which vouches for no model.`,
    );
  }
  if (aaguid === NO_MODEL) {
    throw refuse(
      `This security key names no authenticator model (all-zero AAGUID, format ${fmt}); only allowed models are admitted here.`,
    );
  }
  if (!policy.allowedAaguids.includes(aaguid.toLowerCase())) {
    throw refuse(
      `This security key's model (AAGUID ${aaguid}) is not on this service's allow-list.`,
    );
  }
  if (policy.roots.length > 0) {
    try {
      await validateCertificatePath(x5c.map(convertCertBufferToPEM), [...policy.roots]);
    } catch {
      throw refuse(
        `This security key's attestation certificate does not chain to any of the configured roots (AAGUID ${aaguid}).`,
      );
    }
  }
}

function notAllowed(detail: string, attestation: VerifiedAttestation): DomainError {
  return conflict('authenticator-not-allowed', detail, {
    aaguid: attestation.aaguid,
    attestationFormat: attestation.fmt,
  });
}

function setting(env: Record<string, string | undefined>, name: string): string | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  if (value.trim() === '') throw new ConfigError(name, 'is set but empty');
  return value.trim();
}

function aaguidOf(entry: string): string {
  const aaguid = entry.trim().toLowerCase();
  if (!AAGUID.test(aaguid)) {
    throw new ConfigError(
      'WEBAUTHN_ALLOWED_AAGUIDS',
      `"${entry.trim()}" is not an AAGUID (8-4-4-4-12 hexadecimal digits)`,
    );
  }
  if (aaguid === NO_MODEL) {
    throw new ConfigError(
      'WEBAUTHN_ALLOWED_AAGUIDS',
      'the all-zero AAGUID names no model (U2F keys and anonymised attestations carry it)',
    );
  }
  return aaguid;
}

function rootsOf(raw: string): string[] {
  const blocks = raw.match(PEM_CERTIFICATE) ?? [];
  const fail = (problem: string) => new ConfigError('WEBAUTHN_ATTESTATION_ROOTS', problem);
  if (blocks.length === 0) throw fail('must be one or more PEM "BEGIN CERTIFICATE" blocks');
  return blocks.map((pem, index) => {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(pem);
    } catch {
      throw fail(`certificate ${index + 1} is not a readable X.509 certificate`);
    }
    if (new Date(certificate.validTo) < new Date()) {
      throw fail(
        `certificate ${index + 1} (${oneLine(certificate.subject)}) expired on ${certificate.validTo}`,
      );
    }
    return pem;
  });
}

function oneLine(distinguishedName: string): string {
  return distinguishedName.split('\n').join(', ');
}
