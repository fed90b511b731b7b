import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProperty,
  ApiPropertyOptional,
  ApiTags,
} from '@nestjs/swagger';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { CommandEnvelope } from '../command-handling/command-handler';
import { SecretAnswer } from '../http/idempotency';
import { Roles } from '../http/auth';
import { RateLimited } from '../http/rate-limits';
import { Envelope } from '../http/command-envelope';
import { IdPipe, ReadQuery, TEXT, TEXT_MESSAGE } from '../http/validation';
import { CodeBody, digitsOf } from '../verification/code.dto';
import { ListFactors, ResetEnrollment } from './enrollment.commands';
import {
  StartSecurityKeyRegistration,
  VerifySecurityKeyRegistration,
} from './security-key-enrollment.commands';
import { ConfirmTotpEnrollment, StartTotpEnrollment } from './totp-enrollment.commands';
import {
  REGISTRATION_OPTIONS_SCHEMA,
  RegistrationResponseBody,
} from '../verification/webauthn.dto';
import { apiSchema, commandAnswer, ISO_TIME, nullable, objectSchema } from '../http/api-schemas';

const FACTOR_ID = { type: 'string', example: '96f8ccbc-9282-54ef-bff7-b67492ef99d2' };
const FACTOR_CONFIRMED = apiSchema(
  'FactorConfirmed',
  commandAnswer(
    { factorId: FACTOR_ID },
    { example: { position: '14', factorId: '96f8ccbc-9282-54ef-bff7-b67492ef99d2' } },
  ),
);

export class LabelBody {
  @ApiPropertyOptional({
    maxLength: 100,
    description: 'How the user names the device or key.',
    example: 'Work phone',
  })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  @Matches(TEXT, { message: TEXT_MESSAGE })
  label?: string;
}

export class ResetBody {
  @ApiProperty({ maxLength: 500, example: 'Lost phone' })
  @IsString()
  @MaxLength(500)
  @Matches(TEXT, { message: TEXT_MESSAGE })
  reason!: string;
}

@ApiTags('Enrollment')
@ApiBearerAuth()
@Controller('v1/firms/:firmId/users/:userId/mfa')
export class EnrollmentController {
  constructor(
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
  ) {}

  @Post('totp/enrollment')
  @Roles('user', 'host')
  @RateLimited('user')
  @HttpCode(201)
  @SecretAnswer()
  @ApiOperation({
    summary: 'Start a TOTP enrollment',
    description:
      'Answers the otpauth URI and its QR code (SHA-1, 6 digits, 30 s), valid 10 minutes. 409 mfa-not-enabled, 409 license-exhausted. The answer holds the secret: it is never stored for Idempotency-Key replays; a retry with the same key answers the same enrollment again.',
  })
  @ApiCreatedResponse({
    description: 'The enrollment to confirm within 10 minutes.',
    schema: apiSchema(
      'TotpEnrollmentStarted',
      commandAnswer(
        {
          enrollmentId: { type: 'string' },
          otpauthUri: {
            type: 'string',
            description: 'Key URI: `otpauth://totp/<issuer>:<account>?secret=…&issuer=…`.',
          },
          qrCodeSvg: { type: 'string', description: 'The otpauth URI as a QR code (SVG).' },
          expiresAt: ISO_TIME,
        },
        {
          example: {
            position: '12',
            enrollmentId: '25347e1e-3816-505d-a99e-75430442b85d',
            otpauthUri:
              'otpauth://totp/MFA%20Service:ada%40corp.example?secret=UPRI5TNQ4BEOQIR4XLHJHN4A7OGIKP5R&issuer=MFA%20Service',
            qrCodeSvg: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 49 49">…</svg>',
            expiresAt: '2026-03-02T09:40:00.000Z',
          },
        },
      ),
    ),
  })
  startTotp(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() body: LabelBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(
      new StartTotpEnrollment(firmId, userId, body.label?.trim(), envelope),
    );
  }

  @Post('totp/enrollment/:enrollmentId/confirm')
  @Roles('user', 'host')
  @RateLimited('user')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Confirm a TOTP enrollment with a code from the app',
    description: 'Takes a seat on the first factor. 400 invalid-code, 409 license-exhausted.',
  })
  @ApiOkResponse({ description: 'The confirmed factor.', schema: FACTOR_CONFIRMED })
  confirmTotp(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Param('enrollmentId', IdPipe) enrollmentId: string,
    @Body() body: CodeBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(
      new ConfirmTotpEnrollment(firmId, userId, enrollmentId, digitsOf(body.code), envelope),
    );
  }

  @Post('webauthn/registration/options')
  @Roles('user', 'host')
  @RateLimited('user')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Options to register a security key',
    description:
      "PublicKeyCredentialCreationOptionsJSON with a fresh challenge (valid 10 minutes, usable once); the user's keys are excluded. Also carries position and enrollmentId.",
  })
  @ApiOkResponse({
    description: 'The options to pass to `navigator.credentials.create()`.',
    schema: REGISTRATION_OPTIONS_SCHEMA,
  })
  registrationOptions(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() body: LabelBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(
      new StartSecurityKeyRegistration(firmId, userId, body.label?.trim(), envelope),
    );
  }

  @Post('webauthn/registration/verify')
  @Roles('user', 'host')
  @RateLimited('user')
  @HttpCode(200)
  @ApiOperation({
    summary: "Verify the browser's registration and confirm the security key",
    description:
      'Takes a seat on the first factor. 409 license-exhausted, 409 challenge-not-pending; with WEBAUTHN_ATTESTATION=direct, 409 authenticator-not-allowed for a model off the allow-list.',
  })
  @ApiOkResponse({ description: 'The confirmed security key.', schema: FACTOR_CONFIRMED })
  registrationVerify(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() body: RegistrationResponseBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(
      new VerifySecurityKeyRegistration(
        firmId,
        userId,
        body as unknown as RegistrationResponseJSON,
        envelope,
      ),
    );
  }

  @Post('reset')
  @Roles('superuser')
  @HttpCode(200)
  @ApiOperation({
    summary: "Reset the user's enrollment",
    description:
      'Every factor stops working at once, the seat is freed and the key that sealed the TOTP secrets is destroyed.',
  })
  @ApiOkResponse({
    description: 'The enrollment was reset.',
    schema: apiSchema(
      'EnrollmentReset',
      commandAnswer(
        { factorsRemoved: { type: 'integer', minimum: 0 } },
        { example: { position: '20', factorsRemoved: 1 } },
      ),
    ),
  })
  reset(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() body: ResetBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(
      new ResetEnrollment(firmId, userId, body.reason.trim(), envelope),
    );
  }

  @Get('factors')
  @Roles('user', 'host')
  @ApiOperation({ summary: "The user's confirmed factors" })
  @ApiOkResponse({
    description: "The user's confirmed factors, from the user's own stream.",
    schema: {
      type: 'array',
      items: apiSchema(
        'Factor',
        objectSchema(
          {
            factorId: FACTOR_ID,
            type: { type: 'string', enum: ['totp', 'webauthn'] },
            label: nullable({ type: 'string' }),
            createdAt: ISO_TIME,
            lastUsedAt: nullable(ISO_TIME),
          },
          {
            example: {
              factorId: '96f8ccbc-9282-54ef-bff7-b67492ef99d2',
              type: 'totp',
              label: 'Work phone',
              createdAt: '2026-03-02T09:31:00.000Z',
              lastUsedAt: null,
            },
          },
        ),
      ),
    },
  })
  factors(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Query() _query: ReadQuery,
  ) {
    return this.queryBus.execute(new ListFactors(firmId, userId));
  }
}
