#!/usr/bin/env bash
# Long runs: every test file named *.soak.ts (the fuzzer, the guarantees soak
# of two instances under kills and restarts), one after another, each within
# SOAK_SECONDS (default 600). `npm run soak -- <jest options>`, e.g.
# `npm run soak -- test/soak/fuzz.soak.ts`; FUZZ_SEED=<seed> and
# GUARANTEES_SOAK_SEED=<seed> replay a run. They are not part of `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-test-tools.sh
bash scripts/ensure-deps.sh
# The guarantees soak runs the built service: build what is checked out.
node scripts/build-if-stale.mjs --force
export SOAK_SECONDS="${SOAK_SECONDS:-600}"
echo "== soak: each *.soak.ts within ${SOAK_SECONDS} s"
npx jest --ci --runInBand --testMatch '**/*.soak.ts' "$@"
