import { AppConfig, ConfigError, loadConfig } from '../config/config';

/** A mistake in what the operator typed: one line on stderr, exit 2. */
export class UsageError extends Error {}

/**
 * Runs a command-line tool's `main` and exits with its status: 0 done, 1 the
 * command ran but failed (or stdout was closed by its reader), 2 a usage
 * error (`UsageError`, or one of node:util parseArgs' `ERR_PARSE_ARGS_*`).
 * A failure is one line on stderr, `name: message`, pointing at `--help` for
 * a usage error; no stack trace.
 */
export function runCli(name: string, main: (argv: readonly string[]) => Promise<number>): void {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      const code =
        typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : '';
      const usage =
        error instanceof UsageError ||
        (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'));
      // stdout closed by its reader (`| head`): nothing more to say.
      if (code === 'EPIPE') process.exit(1);
      // parseArgs goes on about quoting a positional that starts with '-' after
      // '--', which misleads behind `npm run x --`: the first sentence says it.
      const said =
        code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
          ? message.replace(/\. To specify a positional argument[\s\S]*$/, '')
          : message.split('\n')[0];
      process.stderr.write(`${name}: ${said}${usage ? ` (npm run ${name} -- --help)` : ''}\n`);
      process.exit(usage ? 2 : 1);
    },
  );
}

/**
 * The service's configuration for a command-line tool, from the environment
 * (docs/configuration.md).
 * @throws UsageError naming the first wrong variable, so the tool says it in
 *   one line and exits 2
 */
export function cliConfiguration(): AppConfig {
  try {
    return loadConfig().config;
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new UsageError(`configuration error: ${error.message.split('\n')[0]}`);
    }
    throw error;
  }
}
