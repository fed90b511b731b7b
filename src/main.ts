import { Logger } from '@nestjs/common';
import { ConfigError, loadConfig } from './config/config';

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`Configuration error: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const { config, warnings } = loaded;
  const logger = new Logger('Main');
  for (const warning of warnings) logger.warn(warning);
  // Loaded after the configuration is known good, so a bad value fails fast.
  const { createApp } = await import('./app');
  const app = await createApp(config);
  // SIGTERM/SIGINT close the HTTP server, then the stores (queued appends land first).
  app.enableShutdownHooks();
  await app.listen(config.port, config.host);
  const url = (await app.getUrl()).replace('[::1]', 'localhost');
  logger.log(
    `MFA service listening on ${url} (events: ${config.eventStoreUrl ? 'KurrentDB' : `SQLite in ${config.dataDir}`}); API docs at ${url}/docs`,
  );
  if (config.jwt.algorithm === 'HS256') {
    logger.log('Mint a development token with: npm run token -- --role superuser --firm acme');
    // The link itself holds a token: printed by the command, never written to this log.
    logger.log(
      'Sign in to the firm admin page (open it on localhost) with the link that ' +
        'npm run -s token -- --role superuser --firm acme --url prints (same DATA_DIR and PORT as this process)',
    );
  }
}

main().catch((error: unknown) => {
  // One line, no stack: the cause is in the message (a port in use, an unreadable data folder),
  // or a variable found wrong only once the stores opened (a master key that opens no stored key).
  const prefix = error instanceof ConfigError ? 'Configuration error' : 'Start failed';
  process.stderr.write(`${prefix}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
