#!/usr/bin/env bash
# Installs the npm packages when node_modules is missing or older than the
# lock file, so `npm start` and `npm test` work on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.installed-from-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "Installing npm packages (npm ci)..."
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi
