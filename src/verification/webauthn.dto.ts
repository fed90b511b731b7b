import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsArray,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  MaxLength,
  ValidateNested,
} from 'class-validator';
import { apiSchema, objectSchema, POSITION } from '../http/api-schemas';

/*
 * The JSON a browser's WebAuthn ceremony produces (what @simplewebauthn/browser
 * and the WebAuthn Level 3 `toJSON()` give): base64url strings, checked for
 * shape here and for meaning by the verification.
 */

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;
/** Attestation objects can be a few kilobytes (certificates); the body limit bounds the rest. */
const MAX_B64 = 32_768;
/** A credential id is at most 1023 bytes (WebAuthn Level 3, 5.1), 1364 characters in base64url. */
const MAX_CREDENTIAL_ID = 1400;

/**
 * A base64url string field of at most `maxLength` characters, documented in
 * the OpenAPI description; `optional` also accepts the field's absence.
 */
function Base64Url(
  maxLength: number,
  options: { optional?: boolean; nullable?: boolean; description?: string; example?: string } = {},
): PropertyDecorator {
  const { optional = false, nullable, description, example = 'SGVsbG8sIFdlYkF1dGhu' } = options;
  const documented = {
    maxLength,
    example,
    ...(nullable ? { nullable } : {}),
    ...(description ? { description } : {}),
  };
  return applyDecorators(
    ...(optional ? [ApiPropertyOptional(documented), IsOptional()] : [ApiProperty(documented)]),
    IsString(),
    MaxLength(maxLength),
    Matches(BASE64URL, { message: 'must be base64url' }),
  );
}

class AttestationResponseBody {
  @Base64Url(MAX_B64)
  clientDataJSON!: string;

  @Base64Url(MAX_B64)
  attestationObject!: string;

  @Base64Url(MAX_B64, { optional: true })
  authenticatorData?: string;

  @ApiPropertyOptional({ type: [String], example: ['usb'] })
  @IsOptional()
  @IsArray()
  @IsIn(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb'], { each: true })
  transports?: string[];

  @ApiPropertyOptional({ example: -7 })
  @IsOptional()
  @IsInt()
  publicKeyAlgorithm?: number;

  @Base64Url(MAX_B64, { optional: true })
  publicKey?: string;
}

class AssertionResponseBody {
  @Base64Url(MAX_B64)
  clientDataJSON!: string;

  @Base64Url(MAX_B64)
  authenticatorData!: string;

  @Base64Url(MAX_B64)
  signature!: string;

  @Base64Url(1024, { optional: true, nullable: true })
  userHandle?: string;
}

abstract class CredentialBody {
  @Base64Url(MAX_CREDENTIAL_ID, {
    description: 'The credential id (base64url).',
    example: 'AbC1dEf2GhI3',
  })
  id!: string;

  @Base64Url(MAX_CREDENTIAL_ID, { example: 'AbC1dEf2GhI3' })
  rawId!: string;

  @ApiProperty({ enum: ['public-key'], example: 'public-key' })
  @IsIn(['public-key'])
  type!: 'public-key';

  @ApiPropertyOptional({ enum: ['platform', 'cross-platform'], example: 'cross-platform' })
  @IsOptional()
  @IsIn(['platform', 'cross-platform'])
  authenticatorAttachment?: 'platform' | 'cross-platform';

  @ApiProperty({ type: Object, example: {} })
  @IsObject()
  clientExtensionResults!: Record<string, unknown>;
}

/** The browser's `RegistrationResponseJSON`. */
export class RegistrationResponseBody extends CredentialBody {
  @ApiProperty({
    type: AttestationResponseBody,
    example: {
      clientDataJSON: 'eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiLi4uIn0',
      attestationObject: 'o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YVjF',
      transports: ['usb'],
    },
  })
  @IsObject()
  @ValidateNested()
  @Type(() => AttestationResponseBody)
  response!: AttestationResponseBody;
}

/** The browser's `AuthenticationResponseJSON`. */
export class AuthenticationResponseBody extends CredentialBody {
  @ApiProperty({
    type: AssertionResponseBody,
    example: {
      clientDataJSON: 'eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiLi4uIn0',
      authenticatorData: 'SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ',
      signature: 'MEUCIQDZ',
      userHandle: 'OCh6ARlNnZzIc7hZapCCug',
    },
  })
  @IsObject()
  @ValidateNested()
  @Type(() => AssertionResponseBody)
  response!: AssertionResponseBody;
}

const CREDENTIAL_DESCRIPTOR = objectSchema(
  {
    id: { type: 'string', description: 'The credential id (base64url).' },
    type: { type: 'string', enum: ['public-key'] },
    transports: { type: 'array', items: { type: 'string' } },
  },
  { optional: ['transports'] },
);

/**
 * The answer of POST .../webauthn/registration/options: the browser's
 * `PublicKeyCredentialCreationOptionsJSON` (WebAuthn Level 3, 5.4) as
 * @simplewebauthn/server makes it, plus `position` and `enrollmentId`.
 */
export const REGISTRATION_OPTIONS_SCHEMA = apiSchema(
  'RegistrationOptions',
  objectSchema(
    {
      challenge: { type: 'string', description: 'base64url; valid 10 minutes, usable once.' },
      rp: objectSchema({ name: { type: 'string' }, id: { type: 'string' } }),
      user: objectSchema({
        id: { type: 'string', description: 'An opaque user handle (base64url), not the userId.' },
        name: { type: 'string' },
        displayName: { type: 'string' },
      }),
      pubKeyCredParams: {
        type: 'array',
        items: objectSchema({ alg: { type: 'integer' }, type: { type: 'string' } }),
      },
      timeout: { type: 'integer', description: 'Milliseconds.' },
      attestation: { type: 'string', enum: ['none', 'indirect', 'direct', 'enterprise'] },
      excludeCredentials: {
        type: 'array',
        description: "The user's registered keys, which the browser will not register again.",
        items: CREDENTIAL_DESCRIPTOR,
      },
      authenticatorSelection: { type: 'object' },
      extensions: { type: 'object' },
      hints: { type: 'array', items: { type: 'string' } },
      position: POSITION,
      enrollmentId: { type: 'string' },
    },
    {
      optional: ['timeout', 'attestation', 'authenticatorSelection', 'extensions', 'hints'],
      example: {
        challenge: '73tplklG97eWX2eCL2zUpLd6QsZRoYQWdBSuXj6mAl4',
        rp: { name: 'MFA Service', id: 'localhost' },
        user: {
          id: 'OCh6ARlNnZzIc7hZapCCug',
          name: 'ada@corp.example',
          displayName: 'Ada Lovelace',
        },
        pubKeyCredParams: [
          { alg: -7, type: 'public-key' },
          { alg: -257, type: 'public-key' },
        ],
        timeout: 300000,
        attestation: 'none',
        excludeCredentials: [],
        authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
        extensions: { credProps: true },
        hints: [],
        position: '18',
        enrollmentId: 'd44eb7ef-899b-5087-bd77-5ae74c772a09',
      },
    },
  ),
);

/**
 * The answer of POST .../webauthn/authentication/options: the browser's
 * `PublicKeyCredentialRequestOptionsJSON` (WebAuthn Level 3, 5.5), plus
 * `position`.
 */
export const AUTHENTICATION_OPTIONS_SCHEMA = apiSchema(
  'AuthenticationOptions',
  objectSchema(
    {
      challenge: { type: 'string', description: 'base64url; valid 5 minutes, usable once.' },
      rpId: { type: 'string' },
      allowCredentials: {
        type: 'array',
        description: "The user's registered keys.",
        items: CREDENTIAL_DESCRIPTOR,
      },
      timeout: { type: 'integer', description: 'Milliseconds.' },
      userVerification: { type: 'string', enum: ['required', 'preferred', 'discouraged'] },
      extensions: { type: 'object' },
      hints: { type: 'array', items: { type: 'string' } },
      position: POSITION,
    },
    {
      optional: ['rpId', 'timeout', 'userVerification', 'extensions', 'hints'],
      example: {
        challenge: 'yBk2cJ3nq0eY2k7uQ6fS1vH9dA4rT8mW5pL0xZ3cV7s',
        rpId: 'localhost',
        allowCredentials: [{ id: 'AbC1dEf2GhI3', type: 'public-key', transports: ['usb'] }],
        timeout: 300000,
        userVerification: 'preferred',
        position: '23',
      },
    },
  ),
);

/** `{ verified: true, position }`: a login verification that succeeded. */
export const VERIFIED_SCHEMA = apiSchema(
  'Verified',
  objectSchema(
    { verified: { type: 'boolean', enum: [true] }, position: POSITION },
    { example: { verified: true, position: '16' } },
  ),
);
