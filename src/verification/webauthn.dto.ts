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
  options: { optional?: boolean; nullable?: boolean; description?: string } = {},
): PropertyDecorator {
  const { optional = false, nullable, description } = options;
  const documented = {
    maxLength,
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

  @ApiPropertyOptional({ type: [String] })
  @IsOptional()
  @IsArray()
  @IsIn(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb'], { each: true })
  transports?: string[];

  @ApiPropertyOptional()
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
  @Base64Url(MAX_CREDENTIAL_ID, { description: 'The credential id (base64url).' })
  id!: string;

  @Base64Url(MAX_CREDENTIAL_ID)
  rawId!: string;

  @ApiProperty({ enum: ['public-key'] })
  @IsIn(['public-key'])
  type!: 'public-key';

  @ApiPropertyOptional({ enum: ['platform', 'cross-platform'] })
  @IsOptional()
  @IsIn(['platform', 'cross-platform'])
  authenticatorAttachment?: 'platform' | 'cross-platform';

  @ApiProperty({ type: Object })
  @IsObject()
  clientExtensionResults!: Record<string, unknown>;
}

/** The browser's `RegistrationResponseJSON`. */
export class RegistrationResponseBody extends CredentialBody {
  @ApiProperty({ type: AttestationResponseBody })
  @IsObject()
  @ValidateNested()
  @Type(() => AttestationResponseBody)
  response!: AttestationResponseBody;
}

/** The browser's `AuthenticationResponseJSON`. */
export class AuthenticationResponseBody extends CredentialBody {
  @ApiProperty({ type: AssertionResponseBody })
  @IsObject()
  @ValidateNested()
  @Type(() => AssertionResponseBody)
  response!: AssertionResponseBody;
}
