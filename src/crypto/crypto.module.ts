import { Module } from '@nestjs/common';
import { TotpSecrets } from './totp-secrets';

/** TOTP secrets sealed with per-user data keys (ADR 0008); the key store is infrastructure. */
@Module({ providers: [TotpSecrets], exports: [TotpSecrets] })
export class CryptoModule {}
