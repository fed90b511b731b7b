import {
  convertCertBufferToPEM,
  decodeAttestationObject,
  validateCertificatePath,
} from '@simplewebauthn/server/helpers';
import type { VerifiedRegistrationResponse } from '@simplewebauthn/server';
import { AttestationPolicy, NO_MODEL } from '../config/attestation';
import { conflict, DomainError } from '../shared/domain-error';

/*
 * Which security keys a deployment admits (DESIGN §2.4: "any authenticator by
 * default; a deployment may require verified attestation from an allow-list
 * of authenticator models"). Pure apart from the certificate path check, which
 * is @simplewebauthn/server's own. docs/configuration.md, "Attestation policy",
 * says what "verified" means here and where it stops.
 */

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
