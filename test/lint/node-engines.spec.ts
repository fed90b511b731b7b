import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { minVersion, Range, satisfies } from 'semver';

/*
 * The Node.js versions the project supports (package.json `engines`,
 * docs/decisions/0022-node-24-runtime-node-20-supported.md) and what the
 * locked packages accept must agree: a package whose `engines` leaves out a
 * supported line makes a fresh `npm ci` print an EBADENGINE warning on it (as
 * `content-disposition` 3 did on Node 20, through `@fastify/static`), and may
 * use APIs that line lacks. Checked at the lowest version of each supported
 * line, where such a package breaks first.
 */

const REPO = join(__dirname, '..', '..');

interface LockedPackage {
  version?: string;
  dev?: boolean;
  engines?: { node?: string } | string[];
}

const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  engines: { node: string };
};
const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockedPackage>;
};

/** The lowest version of each line an `engines` range accepts: `^20.19.0 || >=24` → 20.19.0, 24.0.0. */
function lowestOfEachLine(range: string): string[] {
  return new Range(range).set.map((comparators) => {
    const lowest = minVersion(comparators.map((c) => c.value).join(' '));
    if (!lowest) throw new Error(`engines part "${comparators.join(' ')}" accepts no version`);
    return lowest.version;
  });
}

/** The locked packages (path in node_modules, version, range) whose `engines.node` refuses `version`. */
function refusing(version: string): string[] {
  return Object.entries(lock.packages)
    .filter(([path]) => path !== '')
    .flatMap(([path, pkg]) => {
      const range = Array.isArray(pkg.engines) ? undefined : pkg.engines?.node;
      return range && !satisfies(version, range)
        ? [`${path.replace(/^.*node_modules\//, '')}@${pkg.version} wants node ${range}`]
        : [];
    });
}

describe('Node.js versions: package.json engines against the lock file', () => {
  const supported = lowestOfEachLine(manifest.engines.node);

  it('supports Node 20.19+ (the oldest line, for the machines that still run it) and Node 24 LTS', () => {
    expect(supported).toEqual(expect.arrayContaining(['20.19.0', '24.0.0']));
    // 20.19 and 22.12 are where require() of ES modules stopped needing a flag;
    // the service requires ESM-only packages (see jest.config.js).
    expect(satisfies('20.18.3', manifest.engines.node)).toBe(false);
    expect(satisfies('22.11.0', manifest.engines.node)).toBe(false);
  });

  it.each(supported)('every locked package accepts Node %s', (version) => {
    expect(refusing(version)).toEqual([]);
  });

  it('the Node running these tests is one package.json accepts', () => {
    expect(satisfies(process.versions.node, manifest.engines.node)).toBe(true);
  });

  it('the Docker image runs Node 24, in both stages', () => {
    const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
    const images = [...dockerfile.matchAll(/^FROM (node:\S+)/gm)].map((m) => m[1]);
    expect(images).toEqual(['node:24-bookworm-slim', 'node:24-bookworm-slim']);
  });
});
