import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { CryptoModule } from '../crypto/crypto.module';
import { EnrollmentModule } from '../enrollment/enrollment.module';
import { VerificationModule } from '../verification/verification.module';
import {
  GetLoginRequirementHandler,
  IssueSecurityKeyChallengeHandler,
  VerifySecurityKeyAssertionHandler,
  VerifyTotpCodeHandler,
} from './login.commands';
import { LoginController } from './login.controller';

/** Login (DESIGN §4): the decision, and the second factor's verification. */
@Module({
  imports: [CqrsModule, CryptoModule, EnrollmentModule, VerificationModule],
  controllers: [LoginController],
  providers: [
    GetLoginRequirementHandler,
    VerifyTotpCodeHandler,
    IssueSecurityKeyChallengeHandler,
    VerifySecurityKeyAssertionHandler,
  ],
})
export class LoginModule {}
