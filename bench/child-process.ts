import { ChildProcess, spawn } from 'node:child_process';

/** A server started by a bench in its own process, once it printed "listening on <url>". */
export interface Child {
  url: string;
  child: ChildProcess;
}

/**
 * Runs `node <args>` with only PATH from this environment, plus `env`. With
 * BENCH_CPU_PROF=<dir> the child writes a V8 CPU profile (.cpuprofile) into
 * that folder when it exits normally (the service does on SIGTERM; a process
 * killed by a signal it does not handle writes none), to see where a measured
 * server spends its time.
 */
export function start(args: string[], env: Record<string, string>): Promise<Child> {
  const profileDir = process.env.BENCH_CPU_PROF;
  const profiling = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const child = spawn(process.execPath, [...profiling, ...args], {
    env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) resolve({ url: match[1].replace('[::1]', '127.0.0.1'), child });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args[0]} exited (${code}):\n${output}`)));
  });
}
