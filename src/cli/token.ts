import jwt from 'jsonwebtoken';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/config';
import { TOKEN_ROLES, TokenRole } from '../http/auth';
import { isValidId } from '../shared/ids';

/**
 * Mints a development token signed with the configured HS256 secret (the one
 * `npm start` generated under DATA_DIR, or MFA_JWT_SECRET):
 *   npm run token -- --role superuser --firm acme [--sub alice] [--ttl 3600]
 */
function main(): void {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      firm: { type: 'string' },
      sub: { type: 'string' },
      ttl: { type: 'string', default: '3600' },
    },
  });
  const role = values.role as TokenRole | undefined;
  if (!role || !TOKEN_ROLES.includes(role)) fail(`--role must be one of ${TOKEN_ROLES.join(', ')}`);
  if (values.firm !== undefined && !isValidId(values.firm)) fail('--firm is not a valid id');
  if ((role === 'superuser' || role === 'user') && values.firm === undefined) {
    fail(`a ${role} token needs --firm`);
  }
  const sub = values.sub ?? `dev-${role}`;
  if (!isValidId(sub)) fail('--sub is not a valid id');
  const ttl = Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl <= 0) fail('--ttl must be a number of seconds');

  let config;
  try {
    config = loadConfig().config;
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  if (config.jwt.algorithm !== 'HS256')
    fail('tokens can only be minted here for HS256 (MFA_JWT_SECRET)');
  const claims: Record<string, string> = { role: role! };
  if (values.firm !== undefined) claims.firm = values.firm;
  process.stdout.write(
    `${jwt.sign(claims, config.jwt.secret, { algorithm: 'HS256', subject: sub, expiresIn: ttl })}\n`,
  );
}

function fail(message: string): never {
  process.stderr.write(`token: ${message}\n`);
  process.exit(2);
}

main();
