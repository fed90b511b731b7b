import { ConsoleLogger, Logger, LogLevel } from '@nestjs/common';
import { ConfigError, loadConfig } from './config/config';

const LOG_LEVELS: LogLevel[] = ['error', 'warn', 'log'];

/**
 * Nest's console logger without two lines of NestApplication that mislead at
 * start: "Nest application successfully started", which `app.init()` logs
 * before the server listens (main logs "listening on" once it does), and the
 * listen error Nest logs before rejecting (main prints one line naming the
 * variable to change instead). Nest's Logger passes the context last.
 */
class StartLogger extends ConsoleLogger {
  override log(message: unknown, ...rest: unknown[]): void {
    if (rest.at(-1) === 'NestApplication' && message === 'Nest application successfully started') {
      return;
    }
    super.log(message, ...rest);
  }

  override error(message: unknown, ...rest: unknown[]): void {
    if (
      rest.at(-1) === 'NestApplication' &&
      typeof message === 'string' &&
      message.startsWith('Error: listen ')
    ) {
      return;
    }
    super.error(message, ...rest);
  }
}

/**
 * One line for a listen that failed, naming the variable to change
 * (docs/configuration.md), or undefined for an error that is not about the
 * address: its own message is printed then.
 * @param error what `listen` rejected with (a Node `ErrnoException` by its `code`)
 */
function listenFailure(error: unknown, port: number, host: string): string | undefined {
  switch ((error as NodeJS.ErrnoException | null)?.code) {
    case 'EADDRINUSE':
      return (
        `port ${port} on ${host} is already in use (PORT=${port}, HOST=${host}): ` +
        'stop what listens there or set PORT to a free port'
      );
    case 'EACCES':
      return (
        `no permission to listen on port ${port} (PORT=${port}): ` +
        'ports below 1024 need privileges; set PORT to 1024 or above'
      );
    case 'EADDRNOTAVAIL':
      return (
        `HOST=${host} is not an address of this machine: ` +
        'set HOST to one of its addresses (127.0.0.1, or 0.0.0.0 for all)'
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `HOST=${host} does not resolve to an address: set HOST to an address of this machine`;
    default:
      return undefined;
  }
}

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
  const app = await createApp(config, { logger: new StartLogger({ logLevels: LOG_LEVELS }) });
  // SIGTERM/SIGINT close the HTTP server, then the stores (queued appends land first).
  app.enableShutdownHooks();
  try {
    await app.listen(config.port, config.host);
  } catch (error) {
    // Close what already runs (process-manager leases, stores) before saying why and exiting.
    await app.close().catch(() => undefined);
    const reason = listenFailure(error, config.port, config.host);
    throw reason === undefined ? error : new Error(reason);
  }
  const url = (await app.getUrl()).replace('[::1]', 'localhost');
  logger.log(
    `MFA service listening on ${url} (events: ${config.eventStoreUrl ? 'KurrentDB' : `SQLite in ${config.dataDir}`}); API docs at ${url}/docs`,
  );
  if (config.jwt.algorithm === 'HS256') {
    logger.log(
      'Mint a development token (same DATA_DIR and PORT as this process) with: npm run token -- --role superuser --firm acme',
    );
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
