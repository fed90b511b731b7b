import { ApiProperty } from '@nestjs/swagger';
import { IsString, Matches, MaxLength } from 'class-validator';

/**
 * The shape of a typed TOTP code: 6 digits, one optional space after the
 * third, spaces around. CodeBody's rule, and the login fast path's check of a
 * well-formed body (src/login/login.routes.ts, ADR 0020).
 */
export const TOTP_CODE_PATTERN = /^\s*\d{3}\s?\d{3}\s*$/;
/** At most this many characters of a typed code (spaces included). */
export const TOTP_CODE_MAX_LENGTH = 20;

/** A TOTP code, as the user types it: confirming an enrollment, or verifying a login. */
export class CodeBody {
  @ApiProperty({
    example: '123456',
    description: 'The 6-digit code the app shows (spaces allowed).',
  })
  @IsString()
  @MaxLength(TOTP_CODE_MAX_LENGTH)
  @Matches(TOTP_CODE_PATTERN, { message: 'must be the 6-digit code' })
  code!: string;
}

/** The code's digits, without the spaces a user may type. */
export const digitsOf = (code: string) => code.replace(/\s/g, '');
