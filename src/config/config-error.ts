/**
 * A configuration value that cannot work, named by its variable. main.ts
 * prints it as one line (`Configuration error: VARIABLE: problem`) and exits 1.
 * Its own file so that modules which validate a variable of their own (the
 * key store's master key check, the attestation policy) need not import the
 * whole configuration loader.
 */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}
