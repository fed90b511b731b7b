#!/usr/bin/env bash
# Debian packages the test suite uses, installed only when missing:
# oathtool is the independent TOTP oracle (and plays the authenticator app in
# docs/walkthrough.sh, which also needs curl), chromium the real WebAuthn client.
set -euo pipefail
packages=(oathtool chromium curl)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages: ${missing[*]} (run as root, or install them: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "Installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
