import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/harness';
import { ROOT, run } from '../support/processes';

/*
 * scripts/ensure-deps.sh, which `npm start`, `npm test` and the command-line
 * tools run first, on a small package with no dependencies (npm ci there
 * takes a second and needs no registry): it installs only when node_modules
 * was not installed from this package-lock.json, says what it does before
 * and after, and prints all of it, npm's own output included, on stderr, so
 * that `SU=$(npm run -s token -- ...)` on a fresh clone captures the token
 * alone.
 */

describe('scripts/ensure-deps.sh', () => {
  let project: string;
  const lock = (extra = '') =>
    JSON.stringify({
      name: 'fixture',
      version: '1.0.0',
      lockfileVersion: 3,
      requires: true,
      packages: { '': { name: 'fixture', version: '1.0.0' } },
    }) + extra;

  beforeEach(() => {
    project = tempDir('mfa-ensure-deps-');
    writeFileSync(join(project, 'package.json'), '{ "name": "fixture", "version": "1.0.0" }\n');
    writeFileSync(join(project, 'package-lock.json'), lock('\n'));
    mkdirSync(join(project, 'scripts'));
    copyFileSync(
      join(ROOT, 'scripts', 'ensure-deps.sh'),
      join(project, 'scripts', 'ensure-deps.sh'),
    );
  });
  afterEach(() => rmSync(project, { recursive: true, force: true }));

  const ensureDeps = () =>
    run('bash', [join(project, 'scripts', 'ensure-deps.sh')], {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      npm_config_update_notifier: 'false',
      // The fixture needs nothing from the registry, and the failing case must
      // fail on the lock alone: on Node 24 here npm's fetch of the missing
      // package met a TLS error and retried for 70 s before npm ci refused.
      npm_config_offline: 'true',
    });
  const stamp = () => join(project, 'node_modules', '.installed-from-lock');

  it('installs on a fresh clone, saying so on stderr before and after, and nothing on stdout', async () => {
    const first = await ensureDeps();
    expect(first).toMatchObject({ code: 0, stdout: '' });
    expect(first.stderr).toMatch(
      /^Installing npm packages \(npm ci\)\. The first install compiles better-sqlite3/,
    );
    expect(first.stderr).toMatch(/npm packages installed in \d+ min \d+ s\.\n$/);
    expect(readFileSync(stamp(), 'utf8')).toBe(lock('\n'));

    // Installed from this lock: nothing to do, nothing printed.
    expect(await ensureDeps()).toEqual({ code: 0, stdout: '', stderr: '' });

    // Another lock (a pull that changed dependencies): installs again.
    writeFileSync(join(project, 'package-lock.json'), lock('\n\n'));
    const again = await ensureDeps();
    expect(again).toMatchObject({ code: 0, stdout: '' });
    expect(again.stderr).toMatch(/npm packages installed in/);
    expect(readFileSync(stamp(), 'utf8')).toBe(lock('\n\n'));
  });

  it('rebuilds better-sqlite3 when this Node cannot load it (a switch of Node version), then leaves it be', async () => {
    // Installed from this lock, but the addon throws as a build for another Node ABI does.
    const addon = join(project, 'node_modules', 'better-sqlite3');
    mkdirSync(addon, { recursive: true });
    copyFileSync(join(project, 'package-lock.json'), stamp());
    writeFileSync(
      join(addon, 'index.js'),
      "throw new Error('compiled against a different Node.js version');\n",
    );
    // A stand-in npm that records its arguments and "rebuilds" a loadable addon.
    const bin = join(project, 'bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'npm'),
      '#!/usr/bin/env bash\n' +
        `echo "$*" >> ${JSON.stringify(join(project, 'npm.log'))}\n` +
        `echo 'module.exports = class { close() {} };' > ${JSON.stringify(join(addon, 'index.js'))}\n`,
      { mode: 0o755 },
    );
    const run1 = await run('bash', [join(project, 'scripts', 'ensure-deps.sh')], {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: process.env.HOME,
    });
    expect(run1).toMatchObject({ code: 0, stdout: '' });
    expect(run1.stderr).toMatch(/^better-sqlite3 was built for another Node version/);
    expect(readFileSync(join(project, 'npm.log'), 'utf8')).toBe('rebuild better-sqlite3\n');
    // Loadable now: nothing to do, nothing printed, npm not called again.
    const run2 = await run('bash', [join(project, 'scripts', 'ensure-deps.sh')], {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: process.env.HOME,
    });
    expect(run2).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(join(project, 'npm.log'), 'utf8')).toBe('rebuild better-sqlite3\n');
  });

  it('a failed install exits non-zero with a hint on stderr, and leaves no stamp', async () => {
    // package.json asks for a package the lock does not hold: npm ci refuses.
    writeFileSync(
      join(project, 'package.json'),
      '{ "name": "fixture", "version": "1.0.0", "dependencies": { "left-pad": "1.3.0" } }\n',
    );
    const failed = await ensureDeps();
    expect(failed.code).not.toBe(0);
    expect(failed.stdout).toBe('');
    expect(failed.stderr).toMatch(
      /npm ci failed \(exit \d+\) after \d+ min \d+ s\. If better-sqlite3 did not compile, install g\+\+, make and python3/,
    );
    expect(existsSync(stamp())).toBe(false);
  });
});
