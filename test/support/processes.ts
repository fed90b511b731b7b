import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_JWT_SECRET, TEST_MASTER_KEY } from './harness';

export const ROOT = join(__dirname, '..', '..');
export const BUILT_MAIN = join(ROOT, 'dist', 'src', 'main.js');

/** The process tests run the built service, as production does. */
export function requireBuild(): void {
  if (!existsSync(BUILT_MAIN)) {
    throw new Error(`${BUILT_MAIN} is missing: run \`npm run build\` first (npm test does).`);
  }
}

export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * Starts `node dist/src/main.js` on a free port and waits for its "listening"
 * line. It gets the test secrets unless `withSecrets` is false (the zero-setup start).
 */
export async function spawnService(
  dataDir: string,
  env: Record<string, string> = {},
  { withSecrets = true } = {},
): Promise<ServiceProcess> {
  requireBuild();
  const child = spawn(process.execPath, [BUILT_MAIN], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      DATA_DIR: dataDir,
      PORT: '0',
      ...(withSecrets ? { MFA_JWT_SECRET: TEST_JWT_SECRET, MFA_MASTER_KEY: TEST_MASTER_KEY } : {}),
      NO_COLOR: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) resolve(match[1]);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) =>
      reject(new Error(`service exited (${code}) before listening:\n${output}`)),
    );
  });
  return {
    url,
    child,
    output: () => output,
    exited,
    stop: (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs a command to completion and collects what it printed. */
export function run(
  command: string,
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: env as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Runs the built service for a start that should be refused, and collects
 * what it printed and its exit code. Should it start after all, it is stopped
 * at once (its "listening" line then shows why the test failed) instead of
 * leaving the test waiting for an exit that never comes.
 */
export function startExpectingRefusal(
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  requireBuild();
  const child = spawn(process.execPath, [BUILT_MAIN], {
    cwd: ROOT,
    env: env as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const stopIfListening = () => {
    if (/listening on/.test(stdout + stderr)) child.kill('SIGTERM');
  };
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    stopIfListening();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    stopIfListening();
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}
