#!/usr/bin/env bash
# The whole test suite from a fresh clone: dependencies, type check, lint,
# build, then every test (unit, HTTP against the running app, processes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-test-tools.sh
bash scripts/ensure-deps.sh
echo "== type check"
npx tsc --noEmit -p tsconfig.json
echo "== type check (the web pages' scripts)"
npx tsc -p src/web/public
echo "== lint"
npx eslint . --max-warnings 0
npm run -s lint:boundaries
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
echo "== build"
node scripts/build-if-stale.mjs --force
echo "== tests"
mkdir -p .tmp
status=0
npx jest --ci --json --outputFile=.tmp/jest-results.json "$@" || status=$?
# One plain closing line that any CI reader understands.
node -e '
  const r = require("./.tmp/jest-results.json");
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' || true
exit $status
