import { Module } from '@nestjs/common';
import { VerificationHistory } from './verification-history';

/** A user's login verifications (the verification stream, ADR 0007), for login and enrollment. */
@Module({ providers: [VerificationHistory], exports: [VerificationHistory] })
export class VerificationModule {}
