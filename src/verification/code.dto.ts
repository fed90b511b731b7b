import { ApiProperty } from '@nestjs/swagger';
import { IsString, Matches, MaxLength } from 'class-validator';

/** A TOTP code, as the user types it: confirming an enrollment, or verifying a login. */
export class CodeBody {
  @ApiProperty({
    example: '123456',
    description: 'The 6-digit code the app shows (spaces allowed).',
  })
  @IsString()
  @MaxLength(20)
  @Matches(/^\s*\d{3}\s?\d{3}\s*$/, { message: 'must be the 6-digit code' })
  code!: string;
}

/** The code's digits, without the spaces a user may type. */
export const digitsOf = (code: string) => code.replace(/\s/g, '');
