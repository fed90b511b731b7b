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
const B64_MESSAGE = 'must be base64url';
/** Attestation objects can be a few kilobytes (certificates); the body limit bounds the rest. */
const MAX_B64 = 32_768;

class AttestationResponseBody {
  @ApiProperty()
  @IsString()
  @MaxLength(MAX_B64)
  @Matches(BASE64URL, { message: B64_MESSAGE })
  clientDataJSON!: string;

  @ApiProperty()
  @IsString()
  @MaxLength(MAX_B64)
  @Matches(BASE64URL, { message: B64_MESSAGE })
  attestationObject!: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(MAX_B64)
  @Matches(BASE64URL, { message: B64_MESSAGE })
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

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(MAX_B64)
  @Matches(BASE64URL, { message: B64_MESSAGE })
  publicKey?: string;
}

class AssertionResponseBody {
  @ApiProperty()
  @IsString()
  @MaxLength(MAX_B64)
  @Matches(BASE64URL, { message: B64_MESSAGE })
  clientDataJSON!: string;

  @ApiProperty()
  @IsString()
  @MaxLength(MAX_B64)
  @Matches(BASE64URL, { message: B64_MESSAGE })
  authenticatorData!: string;

  @ApiProperty()
  @IsString()
  @MaxLength(MAX_B64)
  @Matches(BASE64URL, { message: B64_MESSAGE })
  signature!: string;

  @ApiPropertyOptional({ nullable: true })
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  @Matches(BASE64URL, { message: B64_MESSAGE })
  userHandle?: string;
}

abstract class CredentialBody {
  @ApiProperty({ description: 'The credential id (base64url).' })
  @IsString()
  @MaxLength(1400)
  @Matches(BASE64URL, { message: B64_MESSAGE })
  id!: string;

  @ApiProperty()
  @IsString()
  @MaxLength(1400)
  @Matches(BASE64URL, { message: B64_MESSAGE })
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
