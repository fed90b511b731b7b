import { X509Certificate } from 'node:crypto';
import { ConfigError } from './config-error';

/*
 * The attestation policy's configuration (DESIGN §2.4: "any authenticator by
 * default; a deployment may require verified attestation from an allow-list
 * of authenticator models"): WEBAUTHN_ATTESTATION, WEBAUTHN_ALLOWED_AAGUIDS,
 * WEBAUTHN_ATTESTATION_ROOTS. The enrollment slice applies it
 * (src/enrollment/attestation-policy.ts).
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

export const AAGUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** The all-zero AAGUID: U2F keys and anonymised attestations carry it; it names no model. */
export const NO_MODEL = '00000000-0000-0000-0000-000000000000';
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
