import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { CryptoModule } from '../crypto/crypto.module';
import { VerificationModule } from '../verification/verification.module';
import { ListFactorsHandler, ResetEnrollmentHandler } from './enrollment.commands';
import { EnrollmentController } from './enrollment.controller';
import { FactorConfirmation } from './factor-confirmation';
import { SeatKeeper } from './seat-keeper';
import {
  StartSecurityKeyRegistrationHandler,
  VerifySecurityKeyRegistrationHandler,
} from './security-key-enrollment.commands';
import {
  ConfirmTotpEnrollmentHandler,
  StartTotpEnrollmentHandler,
} from './totp-enrollment.commands';
import { UserFacts } from './user-facts';

/**
 * Enrollment (DESIGN §2.4, §2.6, §3): authenticator apps and security keys,
 * each confirmed together with its seat; resets; the seat keeper.
 */
@Module({
  imports: [CqrsModule, CryptoModule, VerificationModule],
  controllers: [EnrollmentController],
  providers: [
    UserFacts,
    FactorConfirmation,
    SeatKeeper,
    StartTotpEnrollmentHandler,
    ConfirmTotpEnrollmentHandler,
    StartSecurityKeyRegistrationHandler,
    VerifySecurityKeyRegistrationHandler,
    ResetEnrollmentHandler,
    ListFactorsHandler,
  ],
  exports: [UserFacts],
})
export class EnrollmentModule {}
