#!/usr/bin/env bash
# Installs the npm packages when node_modules is missing or was installed from
# another package-lock.json, so `npm start`, `npm test` and the command-line
# tools work on a fresh clone.
#
# Everything it prints, npm's own output included, goes to stderr: the README
# captures a token with `SU=$(npm run -s token -- ...)`, which must hold the
# token alone even when this installs first.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.installed-from-lock
# better-sqlite3 is compiled for one Node ABI: a switch of Node version (20 to
# 24) or a .ci/node24 run killed before it put the Node 20 build back leaves
# a binary this Node cannot load, which nothing else would notice.
addon_loads() {
  [ ! -d node_modules/better-sqlite3 ] \
    || node -e 'new (require("better-sqlite3"))(":memory:").close()' >/dev/null 2>&1
}
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
  addon_loads && exit 0
  exec 1>&2
  echo "better-sqlite3 was built for another Node version than this one ($(node --version)):" \
    "rebuilding it from source (about 2 minutes on 2 idle cores)."
  npm rebuild better-sqlite3 || {
    echo "npm rebuild better-sqlite3 failed. It needs g++, make and python3" \
      "(Debian/Ubuntu: apt-get install -y g++ make python3)."
    exit 1
  }
  addon_loads || { echo "better-sqlite3 still does not load on Node $(node --version)."; exit 1; }
  exit 0
fi
exec 1>&2

# better-sqlite3 (and the tests' sqlite3) are native addons. Their install
# scripts download a prebuilt binary when one can be reached and otherwise
# compile it (and SQLite) from source, which needs a C++ toolchain.
missing=()
for tool in g++ make python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
echo "Installing npm packages (npm ci). The first install compiles better-sqlite3 from source"
echo "when no prebuilt binary can be downloaded: about 4 minutes on 2 idle cores, longer on a busy machine."
if [ ${#missing[@]} -gt 0 ]; then
  echo "Warning: ${missing[*]} not found; compiling better-sqlite3 needs g++, make and python3" \
    "(Debian/Ubuntu: apt-get install -y g++ make python3)."
fi
started=$SECONDS
status=0
npm ci --no-audit --no-fund || status=$?
elapsed=$((SECONDS - started))
if [ "$status" -ne 0 ]; then
  echo "npm ci failed (exit $status) after $((elapsed / 60)) min $((elapsed % 60)) s. If better-sqlite3 did not" \
    "compile, install g++, make and python3 (Debian/Ubuntu: apt-get install -y g++ make python3) and run it again."
  exit "$status"
fi
mkdir -p node_modules
cp package-lock.json "$stamp"
echo "npm packages installed in $((elapsed / 60)) min $((elapsed % 60)) s."
