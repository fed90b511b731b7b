#!/usr/bin/env node
// @ts-check
/**
 * Builds the service with `nest build` only when its inputs changed since the
 * last build, so that `npm start` and the command-line tools start in a
 * fraction of a second instead of rebuilding every time (17 s or more).
 *
 * usage: node scripts/build-if-stale.mjs [--force] [OUTPUT...]
 *   OUTPUT   a built file the caller is about to run (dist/src/main.js): a
 *            missing one means a build is needed too
 *   --force  build even when up to date (`npm run build`)
 *
 * Exit status: 0 up to date or built, 1 the build failed, 2 a usage error.
 * Everything it prints goes to stderr: `SU=$(npm run -s token -- ...)`
 * captures the token alone, even when a build ran first.
 *
 * The inputs are every file under the folders the build's tsconfig includes
 * (a glob counts from the folder before its first wildcard, so more is
 * hashed, never less), under nest-cli.json's sourceRoot (the pages' assets),
 * and at the top: nest-cli.json, every tsconfig*.json and package-lock.json
 * (another compiler or library version can change what is emitted). A file
 * the sources import from outside those folders would be compiled but not
 * hashed: none is (src, projections and bench import only each other and
 * node_modules).
 *
 * Why a content hash and not modification times: "rebuild when a source is
 * newer than the last build" misses every change that brings no newer file:
 * a deleted or renamed source (`git rm`, `mv` keeps the time, switching to a
 * branch without the file), an older version that arrives with its own time
 * (`cp -p`, `tar x`, `rsync -a`, unzip), a clock set back or skewed between
 * machines, and a file saved while a build ran (older than a stamp written
 * when the build ended). A hash of the inputs' paths and contents changes
 * whenever what the compiler reads changes, whatever the clocks say, and
 * costs little: 0.1 to 0.25 s for 180 files (2 MB) on a busy 2-core machine.
 * The hash is taken before the build starts: a file saved during the build
 * leaves a stamp that no longer matches, and the next run builds again.
 *
 * The stamp lives in the output folder (dist/.build-inputs.sha256), which
 * `nest build` empties first (deleteOutDir): output from any other build
 * (`npx nest build`, an older checkout's dist) has no stamp and is rebuilt
 * once. Two runs at once (`npm start` while `npm run token` builds) take
 * turns on a lock (.tmp/build.lock): the second waits and then finds the
 * build done instead of emptying dist under the first.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const STAMP = '.build-inputs.sha256';
/** Never inputs, wherever a tsconfig's include would reach. */
const SKIPPED_FOLDERS = new Set(['node_modules', '.git', '.tmp']);

/** @param {string} message */
const say = (message) => process.stderr.write(`${message}\n`);

/** @param {string} path */
function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot read ${relative(ROOT, path)} as JSON: ${reason}`, { cause: error });
  }
}

/**
 * The tsconfig's include list and outDir, following `extends` (relative
 * paths only, as ours are) for whichever the file itself leaves out.
 * @param {string} path
 * @returns {{ include: string[], outDir: string }}
 */
function tsconfigOf(path) {
  const config = readJson(path);
  const base =
    typeof config.extends === 'string' && config.extends.startsWith('.')
      ? tsconfigOf(join(dirname(path), config.extends))
      : { include: ['.'], outDir: 'dist' };
  return {
    include: config.include ?? base.include,
    outDir: config.compilerOptions?.outDir ?? base.outDir,
  };
}

/**
 * The folder a tsconfig include pattern starts from: `scripts/**\/*.ts` ->
 * `scripts`, `src` -> `src`, `**\/*` -> `.`.
 * @param {string} pattern
 */
function folderOf(pattern) {
  const fixed = [];
  for (const part of pattern.split('/')) {
    if (/[*?[{]/.test(part)) break;
    if (part !== '.' && part !== '') fixed.push(part);
  }
  return fixed.join('/') || '.';
}

/**
 * Every file under `folder` (a path relative to ROOT), skipping the output
 * folder and SKIPPED_FOLDERS.
 * @param {string} folder
 * @param {string} outDir
 * @param {Set<string>} into
 */
function collect(folder, outDir, into) {
  const absolute = join(ROOT, folder);
  if (!existsSync(absolute)) return;
  if (statSync(absolute).isFile()) {
    into.add(folder);
    return;
  }
  for (const entry of readdirSync(absolute, { withFileTypes: true })) {
    const path = folder === '.' ? entry.name : `${folder}/${entry.name}`;
    if (SKIPPED_FOLDERS.has(entry.name) || path === outDir) continue;
    const isFolder = entry.isSymbolicLink()
      ? statSync(join(absolute, entry.name), { throwIfNoEntry: false })?.isDirectory()
      : entry.isDirectory();
    if (isFolder) collect(path, outDir, into);
    else if (entry.isFile() || entry.isSymbolicLink()) into.add(path);
  }
}

/**
 * The build's inputs and the output folder.
 * @returns {{ files: string[], outDir: string }}
 */
function buildInputs() {
  const nestCli = readJson(join(ROOT, 'nest-cli.json'));
  const tsconfigPath = nestCli.compilerOptions?.tsConfigPath ?? 'tsconfig.build.json';
  const { include, outDir: rawOutDir } = tsconfigOf(join(ROOT, tsconfigPath));
  const outDir = folderOf(rawOutDir);
  const files = new Set();
  const topLevel = readdirSync(ROOT).filter(
    (name) =>
      name === 'nest-cli.json' || name === 'package-lock.json' || /^tsconfig.*\.json$/.test(name),
  );
  for (const folder of [...include.map(folderOf), nestCli.sourceRoot ?? 'src', ...topLevel]) {
    collect(folder, outDir, files);
  }
  // Sorted, with '/' separators: the same tree hashes the same on every machine.
  return { files: [...files].map((f) => f.split(sep).join('/')).sort(), outDir };
}

/**
 * SHA-256 over each input's path, length and content: a changed, added,
 * removed or renamed file changes it.
 * @param {string[]} files
 */
function hashOf(files) {
  const hash = createHash('sha256');
  for (const file of files) {
    const content = readFileSync(join(ROOT, file));
    hash.update(`${file}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest('hex');
}

/**
 * Why a build is needed, or undefined when the output is up to date.
 * @param {{ force: boolean, outputs: string[] }} options
 */
function staleness({ force, outputs }) {
  const { files, outDir } = buildInputs();
  const hash = hashOf(files);
  const stampPath = join(ROOT, outDir, STAMP);
  const stamp = existsSync(stampPath) ? readFileSync(stampPath, 'utf8').trim() : undefined;
  const missing = outputs.find((output) => !existsSync(join(ROOT, output)));
  const reason = force
    ? '--force'
    : stamp === undefined
      ? `no stamp of an earlier build: ${outDir}/${STAMP}`
      : stamp !== hash
        ? 'the sources changed since the last build'
        : missing !== undefined
          ? `${missing} is missing`
          : undefined;
  return { reason, hash, stampPath };
}

/** The longest wait for another process's build, in milliseconds. */
const MAX_WAIT_MS = 10 * 60_000;

/** @param {number} pid */
function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return /** @type {{ code?: string }} */ (error).code === 'EPERM';
  }
}

/**
 * Runs `work` while holding .tmp/build.lock (a folder: mkdir is atomic),
 * waiting while another live process holds it. A lock whose process has
 * died (a build interrupted by Ctrl-C) is taken over.
 * @template T
 * @param {() => T} work
 * @returns {Promise<T>}
 */
async function withBuildLock(work) {
  const lock = join(ROOT, '.tmp', 'build.lock');
  const pidFile = join(lock, 'pid');
  mkdirSync(dirname(lock), { recursive: true });
  let announced = false;
  const waitingSince = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(pidFile, `${process.pid}\n`);
      break;
    } catch (error) {
      if (/** @type {{ code?: string }} */ (error).code !== 'EEXIST') throw error;
    }
    let holder = Number.NaN;
    try {
      holder = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
    } catch (error) {
      if (/** @type {{ code?: string }} */ (error).code !== 'ENOENT') throw error;
    }
    // No pid yet: the holder is between its mkdir and its write; give it a moment.
    const ageMs = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    // Our own pid in the file is a lock left by a killed run whose pid came
    // back to us (containers number processes the same way each start).
    const stale = Number.isNaN(holder) ? ageMs > 5_000 : holder === process.pid || !isAlive(holder);
    if (stale) {
      rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (!announced) {
      say(`Waiting for the build that process ${holder || '?'} is running...`);
      announced = true;
    }
    // A build takes under a minute; a holder alive for longer than this is a
    // reused pid or a hung build: say which folder to remove instead of waiting forever.
    if (Date.now() - waitingSince > MAX_WAIT_MS) {
      throw new Error(
        `waited ${MAX_WAIT_MS / 60_000} minutes for process ${holder || '?'} to finish building; ` +
          `if no build is running, remove ${relative(ROOT, lock)} and try again`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  try {
    return work();
  } finally {
    // Only our own lock: a waiter that wrongly judged us dead may hold it now.
    let owner = Number.NaN;
    try {
      owner = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
    } catch {
      // Already gone.
    }
    if (owner === process.pid) rmSync(lock, { recursive: true, force: true });
  }
}

/** @param {{ force: boolean, outputs: string[] }} options */
function build(options) {
  // Checked again under the lock: whoever held it may have just built these sources.
  const { reason, hash, stampPath } = staleness(options);
  if (reason === undefined) return 0;
  // A build that fails half way must not leave a stamp saying it is done.
  rmSync(stampPath, { force: true });
  say(`Building the service with nest build (${reason})...`);
  const started = Date.now();
  const nest = createRequire(join(ROOT, 'package.json')).resolve('@nestjs/cli/bin/nest.js');
  // Its output goes to stderr (fd 2) with ours.
  const result = spawnSync(process.execPath, [nest, 'build'], {
    cwd: ROOT,
    stdio: ['ignore', 2, 2],
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (result.status !== 0) {
    say(`The build failed after ${seconds} s (nest build exit ${result.status ?? result.signal}).`);
    return 1;
  }
  mkdirSync(dirname(stampPath), { recursive: true });
  writeFileSync(stampPath, `${hash}\n`);
  say(`Built in ${seconds} s.`);
  return 0;
}

async function main() {
  const args = process.argv.slice(2);
  const bad = args.find((arg) => arg.startsWith('-') && arg !== '--force');
  if (bad !== undefined) {
    say(`build-if-stale: unknown option ${bad} (usage: build-if-stale.mjs [--force] [OUTPUT...])`);
    return 2;
  }
  const options = {
    force: args.includes('--force'),
    outputs: args.filter((arg) => arg !== '--force'),
  };
  if (staleness(options).reason === undefined) return 0;
  return withBuildLock(() => build(options));
}

main().then(
  (code) => process.exit(code),
  (error) => {
    say(`build-if-stale: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
