import { Body, Controller, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { CommandBus } from '@nestjs/cqrs';
import type { CommandEnvelope } from '../command-handling/command-handler';
import { IgnoresIdempotencyKey } from '../http/idempotency';
import {
  AUTHENTICATION_OPTIONS_SCHEMA,
  AuthenticationResponseBody,
  VERIFIED_SCHEMA,
} from '../verification/webauthn.dto';
import { Roles } from '../http/auth';
import { RateLimited } from '../http/rate-limits';
import { Envelope } from '../http/command-envelope';
import { EmptyBody, IdPipe } from '../http/validation';
import { IssueSecurityKeyChallenge, VerifySecurityKeyAssertion } from './login.commands';
import { LOGIN_ROLES } from './login.routes';

/*
 * GET .../login-requirement and POST .../totp/verify, the two routes of every
 * login, are served outside Nest's pipeline: login.routes.ts (ADR 0020).
 */
@ApiTags('Login')
@ApiBearerAuth()
@Roles(...LOGIN_ROLES)
@Controller('v1/firms/:firmId/users/:userId/mfa')
export class LoginController {
  constructor(private readonly commandBus: CommandBus) {}

  @Post('webauthn/authentication/options')
  @RateLimited('user')
  @HttpCode(200)
  @IgnoresIdempotencyKey()
  @ApiOperation({
    summary: 'Options to log in with a security key',
    description:
      'PublicKeyCredentialRequestOptionsJSON with a fresh challenge, valid 5 minutes and usable once.',
  })
  @ApiOkResponse({
    description: 'The options to pass to `navigator.credentials.get()`.',
    schema: AUTHENTICATION_OPTIONS_SCHEMA,
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
  @ApiOkResponse({ description: 'The login is verified.', schema: VERIFIED_SCHEMA })
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
