#!/usr/bin/env bash
# Buque setup: system packages (when run as root on Debian/Ubuntu), then the Python package
# with its test extras. Idempotent; safe to re-run. Works offline once packages are cached.
set -euo pipefail
cd "$(dirname "$0")"

# postgresql + postgresql-15-postgis-3 (Debian 12's names): the PostGIS store's tests start a
# throwaway cluster with them (bench/pgcluster.py); the tile and engine benchmarks use them too
SYSTEM_PACKAGES=(chromium fonts-noto-cjk poppler-utils nodejs npm postgresql postgresql-15-postgis-3)

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${SYSTEM_PACKAGES[@]}"; do
    case "$p" in  # node and npm may come from elsewhere (nodesource, nvm): take any that runs
      nodejs|npm) command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue ;;
    esac
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "setup: not root or no apt-get; make sure these are installed: ${SYSTEM_PACKAGES[*]}"
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]"

# the web map's JavaScript (MapLibre GL JS) from the npm registry, served by the app offline
if command -v npm >/dev/null 2>&1; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "setup: npm not found; the web map (/map) needs it once: cd web && npm ci"
fi
echo "setup: done. Run 'buque demo' (or 'buque --help')."
