import { spawn } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/harness';
import { ROOT, run } from '../support/processes';

/*
 * scripts/build-if-stale.mjs, which `npm start`, `npm run token`,
 * `projections`, `audit` and `bench` run before the built code: it builds
 * when, and only when, what the build reads changed since the last build.
 *
 * It runs here on a small project of its own, with a stand-in for
 * `nest build` (node_modules/@nestjs/cli/bin/nest.js) that counts its runs in
 * builds.log and copies each .ts input to dist as .js, emptying dist first as
 * deleteOutDir does, and fails on a source holding BROKEN. So every case
 * takes milliseconds, and a build is counted exactly.
 * test/process/npm-scripts.spec.ts runs it with the real `nest build` on a
 * copy of this repository.
 */

const STAND_IN_NEST = `
const fs = require('node:fs');
const path = require('node:path');
const root = process.cwd();
fs.appendFileSync(path.join(root, 'builds.log'), 'build\\n');
// While the test holds the gate, this build stays running.
const sleeper = new Int32Array(new SharedArrayBuffer(4));
while (fs.existsSync(path.join(root, 'gate'))) Atomics.wait(sleeper, 0, 0, 20);
fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
const walk = (folder) =>
  fs.readdirSync(path.join(root, folder), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(path.join(folder, entry.name)) : [path.join(folder, entry.name)],
  );
for (const file of ['src', 'lib'].flatMap(walk).filter((f) => f.endsWith('.ts'))) {
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  if (text.includes('BROKEN')) {
    console.error(file + ': error TS1005: the stand-in compiler refuses BROKEN');
    process.exit(1);
  }
  const out = path.join(root, 'dist', file.replace(/\\.ts$/, '.js'));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, text);
}
console.log('stand-in nest build done');
`;

/** A project laid out as ours: nest-cli.json, a tsconfig.build.json extending tsconfig.json. */
function makeProject(): string {
  const dir = tempDir('mfa-build-if-stale-');
  const write = (path: string, text: string) => {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  };
  write('package.json', '{ "name": "fixture", "version": "1.0.0", "private": true }\n');
  write('package-lock.json', '{ "name": "fixture", "lockfileVersion": 3 }\n');
  write(
    'nest-cli.json',
    JSON.stringify({
      sourceRoot: 'src',
      compilerOptions: { tsConfigPath: 'tsconfig.build.json', deleteOutDir: true },
    }),
  );
  write(
    'tsconfig.json',
    JSON.stringify({
      compilerOptions: { outDir: './dist', rootDir: '.' },
      include: ['src', 'lib', 'test'],
    }),
  );
  // A glob, as ours has for scripts/**/*.ts: its folder counts.
  write(
    'tsconfig.build.json',
    JSON.stringify({ extends: './tsconfig.json', include: ['src', 'lib/**/*.ts'] }),
  );
  write('src/main.ts', "import { word } from '../lib/word';\n");
  write('lib/word.ts', "export const word = 'one';\n");
  write('test/main.spec.ts', '// not an input of the build\n');
  write('README.md', '# not an input of the build\n');
  write('node_modules/@nestjs/cli/bin/nest.js', STAND_IN_NEST);
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(
    join(ROOT, 'scripts', 'build-if-stale.mjs'),
    join(dir, 'scripts', 'build-if-stale.mjs'),
  );
  return dir;
}

describe('scripts/build-if-stale.mjs', () => {
  let project: string;
  beforeEach(() => (project = makeProject()));
  afterEach(() => rmSync(project, { recursive: true, force: true }));

  const script = () => join(project, 'scripts', 'build-if-stale.mjs');
  const buildIfStale = (...args: string[]) =>
    run(process.execPath, [script(), ...args], { PATH: process.env.PATH });
  const builds = () =>
    existsSync(join(project, 'builds.log'))
      ? readFileSync(join(project, 'builds.log'), 'utf8').trimEnd().split('\n').length
      : 0;
  const built = (path: string) => readFileSync(join(project, 'dist', path), 'utf8');
  const edit = (path: string, text: string) => writeFileSync(join(project, path), text);
  /** An mtime a year before now: what `cp -p`, `tar x` or `rsync -a` of an older version leave. */
  const backdate = (path: string) => {
    const yearAgo = new Date(Date.now() - 365 * 24 * 3600 * 1000);
    utimesSync(join(project, path), yearAgo, yearAgo);
  };
  /** Runs it and answers how many builds that run started. */
  const buildsBy = async (...args: string[]) => {
    const before = builds();
    const result = await buildIfStale(...args);
    expect({ args, code: result.code, stdout: result.stdout }).toEqual({
      args,
      code: 0,
      stdout: '',
    });
    return builds() - before;
  };

  it('builds the first time, then not again while nothing changed; all it prints goes to stderr', async () => {
    const first = await buildIfStale('dist/src/main.js');
    expect(first).toMatchObject({ code: 0, stdout: '' });
    expect(first.stderr).toMatch(
      /^Building the service with nest build \(no stamp of an earlier build/,
    );
    // The compiler's own stdout is passed on, to stderr.
    expect(first.stderr).toContain('stand-in nest build done');
    expect(first.stderr).toMatch(/Built in \d+\.\d s\.\n$/);
    expect(builds()).toBe(1);
    expect(built('lib/word.js')).toBe("export const word = 'one';\n");

    const mainBuiltAt = statSync(join(project, 'dist', 'src', 'main.js')).mtimeMs;
    for (let i = 0; i < 3; i++) {
      expect(await buildIfStale('dist/src/main.js')).toEqual({ code: 0, stdout: '', stderr: '' });
    }
    expect(builds()).toBe(1);
    expect(statSync(join(project, 'dist', 'src', 'main.js')).mtimeMs).toBe(mainBuiltAt);
  });

  it('builds again when an input changes, even when its modification time is older than the build', async () => {
    expect(await buildsBy()).toBe(1);

    edit('lib/word.ts', "export const word = 'two';\n");
    expect(await buildsBy()).toBe(1);
    expect(built('lib/word.js')).toBe("export const word = 'two';\n");

    // The older version restored with its own time (cp -p, tar x): an
    // "inputs newer than the last build" rule would keep 'two'.
    edit('lib/word.ts', "export const word = 'one';\n");
    backdate('lib/word.ts');
    expect(await buildsBy()).toBe(1);
    expect(built('lib/word.js')).toBe("export const word = 'one';\n");

    // A new time alone (touch) is not a change.
    utimesSync(join(project, 'lib', 'word.ts'), new Date(), new Date());
    expect(await buildsBy()).toBe(0);
  });

  it('counts an added, a removed and a renamed file, and the configuration and lock files', async () => {
    expect(await buildsBy()).toBe(1);

    edit('src/extra.ts', 'export const extra = 1;\n');
    expect(await buildsBy()).toBe(1);
    expect(built('src/extra.js')).toBe('export const extra = 1;\n');

    rmSync(join(project, 'src', 'extra.ts'));
    expect(await buildsBy()).toBe(1);
    expect(existsSync(join(project, 'dist', 'src', 'extra.js'))).toBe(false);

    // Same content, another name.
    edit('lib/other.ts', "export const word = 'one';\n");
    expect(await buildsBy()).toBe(1);
    rmSync(join(project, 'lib', 'word.ts'));
    edit('lib/word2.ts', "export const word = 'one';\n");
    rmSync(join(project, 'lib', 'other.ts'));
    expect(await buildsBy()).toBe(1);
    expect(existsSync(join(project, 'dist', 'lib', 'word2.js'))).toBe(true);

    for (const file of [
      'tsconfig.json',
      'tsconfig.build.json',
      'nest-cli.json',
      'package-lock.json',
    ]) {
      const text = readFileSync(join(project, file), 'utf8');
      // Whitespace only: still the file the build reads, so still a change to it.
      edit(file, `${text}\n`);
      backdate(file);
      expect([file, await buildsBy()]).toEqual([file, 1]);
    }

    // Files the build does not read.
    appendFileSync(join(project, 'README.md'), 'more\n');
    appendFileSync(join(project, 'test', 'main.spec.ts'), '// more\n');
    expect(await buildsBy()).toBe(0);
  });

  it('builds when a file the caller is about to run is missing, and always with --force', async () => {
    expect(await buildsBy('dist/src/main.js')).toBe(1);
    rmSync(join(project, 'dist', 'src', 'main.js'));
    const rebuilt = await buildIfStale('dist/src/main.js');
    expect(rebuilt.stderr).toMatch(/\(dist\/src\/main\.js is missing\)/);
    expect(builds()).toBe(2);
    expect(existsSync(join(project, 'dist', 'src', 'main.js'))).toBe(true);

    expect(await buildsBy('--force')).toBe(1);
    expect(await buildsBy()).toBe(0);

    const wrong = await buildIfStale('--watch');
    expect(wrong.code).toBe(2);
    expect(wrong.stderr.trimEnd().split('\n')).toEqual([
      'build-if-stale: unknown option --watch (usage: build-if-stale.mjs [--force] [OUTPUT...])',
    ]);
    expect(builds()).toBe(3);
  });

  it('a failed build exits 1 and leaves no stamp: the next run tries again until one succeeds', async () => {
    expect(await buildsBy()).toBe(1);
    edit('lib/word.ts', 'BROKEN\n');
    for (let attempt = 1; attempt <= 2; attempt++) {
      const failed = await buildIfStale();
      expect(failed.code).toBe(1);
      expect(failed.stdout).toBe('');
      expect(failed.stderr).toContain('error TS1005');
      expect(failed.stderr).toMatch(/The build failed after \d+\.\d s \(nest build exit 1\)\.\n$/);
      expect(builds()).toBe(1 + attempt);
    }
    // Back to the content of the last good build: dist was emptied by the failed one.
    edit('lib/word.ts', "export const word = 'one';\n");
    expect(await buildsBy()).toBe(1);
    expect(built('lib/word.js')).toBe("export const word = 'one';\n");
    expect(await buildsBy()).toBe(0);
  });

  it('two runs at once build once: the second waits for the first and then finds the build done', async () => {
    edit('gate', 'held by the test\n');
    const start = () => {
      const child = spawn(process.execPath, [script()], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      const waiting = new Promise<void>((resolve) =>
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          if (stderr.includes('Waiting for the build')) resolve();
        }),
      );
      const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
        child.once('close', (code) => resolve({ code, stderr })),
      );
      return { waiting, exited };
    };
    const [one, two] = [start(), start()];
    // One of them holds the lock (its build held at the gate), the other says it waits.
    await Promise.race([one.waiting, two.waiting]);
    rmSync(join(project, 'gate'));
    const results = await Promise.all([one.exited, two.exited]);
    expect(results.map((r) => r.code)).toEqual([0, 0]);
    expect(builds()).toBe(1);
    expect(results.filter((r) => r.stderr.includes('Built in'))).toHaveLength(1);
    expect(existsSync(join(project, '.tmp', 'build.lock'))).toBe(false);
  });

  it('takes over the lock of a build whose process died (a Ctrl-C during the build)', async () => {
    const gone = spawn(process.execPath, ['-e', '']);
    const deadPid = gone.pid!;
    await new Promise((resolve) => gone.once('exit', resolve));
    mkdirSync(join(project, '.tmp', 'build.lock'), { recursive: true });
    writeFileSync(join(project, '.tmp', 'build.lock', 'pid'), `${deadPid}\n`);
    expect(await buildsBy()).toBe(1);
    expect(existsSync(join(project, '.tmp', 'build.lock'))).toBe(false);
  });

  it('takes over a lock that names its own pid (a killed run whose pid came back, as in a container)', async () => {
    mkdirSync(join(project, '.tmp', 'build.lock'), { recursive: true });
    // exec keeps the shell's pid, so the lock names the very process that reads it.
    const result = await run(
      'bash',
      [
        '-c',
        'echo $$ > "$2" && exec "$0" "$1"',
        process.execPath,
        script(),
        join(project, '.tmp', 'build.lock', 'pid'),
      ],
      { PATH: process.env.PATH },
    );
    expect(result).toMatchObject({ code: 0, stdout: '' });
    expect(result.stderr).not.toMatch(/Waiting/);
    expect(builds()).toBe(1);
    expect(existsSync(join(project, '.tmp', 'build.lock'))).toBe(false);
  });
});
