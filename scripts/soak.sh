#!/usr/bin/env bash
# Long runs: every test file named *.soak.ts (fuzzers, and later loads and
# endurance runs), one after another, each within SOAK_SECONDS (default 600).
# `npm run soak -- <jest options>`, e.g. `npm run soak -- test/soak/fuzz.soak.ts`;
# FUZZ_SEED=<seed> replays a fuzz run. They are not part of `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-test-tools.sh
bash scripts/ensure-deps.sh
export SOAK_SECONDS="${SOAK_SECONDS:-600}"
echo "== soak: each *.soak.ts within ${SOAK_SECONDS} s"
npx jest --ci --runInBand --testMatch '**/*.soak.ts' "$@"
