import jwt from 'jsonwebtoken';
import { generateKeyPairSync } from 'node:crypto';
import { RunningService, startService, TEST_JWT_SECRET } from '../support/harness';

/** API.md: RS256 with MFA_JWT_PUBLIC_KEY as the alternative to HS256. */
describe('tokens verified with an RS256 public key', () => {
  let service: RunningService;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const path = '/v1/firms/acme/mfa/subscription';

  beforeAll(async () => {
    service = await startService({ env: { MFA_JWT_PUBLIC_KEY: publicPem }, withoutSecret: true });
  });
  afterAll(() => service.stop());

  const sign = (key: jwt.Secret, algorithm: jwt.Algorithm) =>
    jwt.sign({ role: 'operator' }, key, { algorithm, subject: 'ops', expiresIn: 60 });

  it('accepts a token signed with the matching private key', async () => {
    expect((await service.api.get(path, sign(privateKey, 'RS256'))).status).toBe(200);
  });

  it('refuses a token signed with another private key', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    expect((await service.api.get(path, sign(other, 'RS256'))).status).toBe(401);
  });

  it('refuses HS256 tokens, including one whose secret is the public key (algorithm confusion)', async () => {
    expect((await service.api.get(path, sign(TEST_JWT_SECRET, 'HS256'))).status).toBe(401);
    expect((await service.api.get(path, sign(Buffer.from(publicPem), 'HS256'))).status).toBe(401);
  });
});
