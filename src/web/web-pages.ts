import type { FastifyInstance } from 'fastify';
import { dirname, join } from 'node:path';
import {
  CSS,
  fileOnDisk,
  HTML,
  JAVASCRIPT,
  PageFile,
  servePageFiles,
  SVG,
} from '../http/page-files';

/*
 * The firm admin's page (/admin) and the user's enrollment page (/enroll):
 * static files that call the public API with the token the host application
 * put in the link's fragment (docs/web-pages.md). The service serves them so
 * that they share its origin: no CORS, one Content-Security-Policy, and a
 * WebAuthn origin that is the service's own.
 */

/** The pages' own files, copied next to this module by `nest build` (nest-cli.json assets). */
const PUBLIC = join(__dirname, 'public');

/** A package's folder, found from its resolved entry (some packages' exports hide package.json). */
function packageFolder(entry: string, depth: number): string {
  let folder = dirname(require.resolve(entry));
  for (let i = 0; i < depth; i++) folder = dirname(folder);
  return folder;
}

/** The pages, their script and style, and the two libraries they load, each at a fixed path. */
export function webPageFiles(): PageFile[] {
  const own = (path: string, type: string, file: string) =>
    fileOnDisk(path, type, join(PUBLIC, file));
  // chart.js resolves to dist/chart.cjs; @simplewebauthn/browser to script/index.js.
  const chartJs = join(packageFolder('chart.js', 1), 'dist', 'chart.umd.min.js');
  const webAuthn = join(
    packageFolder('@simplewebauthn/browser', 1),
    'dist',
    'bundle',
    'index.umd.min.js',
  );
  return [
    own('/admin', HTML, 'admin.html'),
    own('/admin/', HTML, 'admin.html'),
    own('/enroll', HTML, 'enroll.html'),
    own('/enroll/', HTML, 'enroll.html'),
    own('/ui/app.css', CSS, 'app.css'),
    own('/ui/common.js', JAVASCRIPT, 'common.js'),
    own('/ui/admin.js', JAVASCRIPT, 'admin.js'),
    own('/ui/enroll.js', JAVASCRIPT, 'enroll.js'),
    own('/ui/icon.svg', SVG, 'icon.svg'),
    own('/favicon.ico', SVG, 'icon.svg'),
    fileOnDisk('/ui/vendor/chart.umd.min.js', JAVASCRIPT, chartJs),
    fileOnDisk('/ui/vendor/simplewebauthn-browser.js', JAVASCRIPT, webAuthn),
  ];
}

/**
 * Routes for the pages (GET and HEAD), under the pages' Content-Security-Policy,
 * outside the per-address limit on requests without a token (they carry none).
 */
export function serveWebPages(fastify: FastifyInstance): void {
  servePageFiles(fastify, webPageFiles(), { addressLimitExempt: true });
}
