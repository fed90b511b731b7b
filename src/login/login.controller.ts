import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { CommandEnvelope } from '../command-handling/command-handler';
import { IgnoresIdempotencyKey } from '../http/idempotency';
import { CodeBody, digitsOf } from '../verification/code.dto';
import { AuthenticationResponseBody } from '../verification/webauthn.dto';
import { Roles } from '../http/auth';
import { RateLimited } from '../http/rate-limits';
import { Envelope } from '../http/command-envelope';
import { EmptyBody, IdPipe, ReadQuery } from '../http/validation';
import {
  GetLoginRequirement,
  IssueSecurityKeyChallenge,
  VerifySecurityKeyAssertion,
  VerifyTotpCode,
} from './login.commands';

@ApiTags('Login')
@ApiBearerAuth()
@Roles('host', 'user')
@Controller('v1/firms/:firmId/users/:userId/mfa')
export class LoginController {
  constructor(
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
  ) {}

  @Get('login-requirement')
  @ApiOperation({
    summary: 'What the user must do at login: verify, enroll, bypass or off',
    description: 'An unknown or inactive user gets off, not 404.',
  })
  requirement(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Query() _query: ReadQuery,
  ) {
    return this.queryBus.execute(new GetLoginRequirement(firmId, userId));
  }

  @Post('totp/verify')
  @RateLimited('verification')
  @HttpCode(200)
  @IgnoresIdempotencyKey()
  @ApiOperation({
    summary: 'Verify a TOTP code at login',
    description:
      'The current 30 s step or one either side; a step already accepted is refused. 401 { verified: false, attemptsLeft }; five failures in a row lock TOTP for 15 minutes (423 with Retry-After).',
  })
  verifyTotp(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() body: CodeBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(
      new VerifyTotpCode(firmId, userId, digitsOf(body.code), envelope),
    );
  }

  @Post('webauthn/authentication/options')
  @RateLimited('user')
  @HttpCode(200)
  @IgnoresIdempotencyKey()
  @ApiOperation({
    summary: 'Options to log in with a security key',
    description:
      'PublicKeyCredentialRequestOptionsJSON with a fresh challenge, valid 5 minutes and usable once.',
  })
  authenticationOptions(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() _body: EmptyBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(new IssueSecurityKeyChallenge(firmId, userId, envelope));
  }

  @Post('webauthn/authentication/verify')
  @RateLimited('verification')
  @HttpCode(200)
  @IgnoresIdempotencyKey()
  @ApiOperation({
    summary: "Verify the browser's assertion",
    description:
      'Checks origin, RP ID, the challenge (once) and the signature counter; a key registered to another user is refused. 401 { verified: false }.',
  })
  authenticationVerify(
    @Param('firmId', IdPipe) firmId: string,
    @Param('userId', IdPipe) userId: string,
    @Body() body: AuthenticationResponseBody,
    @Envelope() envelope: CommandEnvelope,
  ) {
    return this.commandBus.execute(
      new VerifySecurityKeyAssertion(
        firmId,
        userId,
        body as unknown as AuthenticationResponseJSON,
        envelope,
      ),
    );
  }
}
