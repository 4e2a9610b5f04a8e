#!/usr/bin/env bash
# Buque setup: system packages (when run as root on Debian/Ubuntu), then a virtual environment
# (.venv, or $BUQUE_VENV) with the Python package and its test extras at the versions pinned in
# constraints.txt, then the web map's JavaScript. Idempotent; safe to re-run.
#
#   bash setup.sh                        install (reproducibly: constraints.txt)
#   bash setup.sh --refresh-constraints  resolve the newest versions in a throwaway environment,
#                                        write them to constraints.txt, then install
set -euo pipefail
cd "$(dirname "$0")"

VENV="${BUQUE_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
PIP_FLAGS=(-q --disable-pip-version-check)

# postgresql + postgresql-15-postgis-3 (Debian 12's names): the PostGIS store's tests start a
# throwaway cluster with them (bench/pgcluster.py); the tile and engine benchmarks use them too
SYSTEM_PACKAGES=(chromium fonts-noto-cjk poppler-utils nodejs npm postgresql postgresql-15-postgis-3)
"$PYTHON" -m venv --help >/dev/null 2>&1 || SYSTEM_PACKAGES+=(python3-venv)

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

if [ "${1:-}" = "--refresh-constraints" ]; then
  # a clean resolution of pyproject.toml's ranges; everything but Buque itself is pinned
  lock="$(mktemp -d)"
  "$PYTHON" -m venv "$lock/venv"
  "$lock/venv/bin/python" -m pip install "${PIP_FLAGS[@]}" -e ".[test]"
  { echo "# Versions of every Python package the tests install, resolved by"
    echo "# 'bash setup.sh --refresh-constraints' on $(date -u +%F) with $("$lock/venv/bin/python" -V)."
    echo "# setup.sh installs with 'pip install -c constraints.txt', so a fresh machine gets these."
    "$lock/venv/bin/python" -m pip freeze --exclude-editable --all | grep -viE '^(pip|setuptools|wheel)=='
  } > constraints.txt
  rm -rf "$lock"
  echo "setup: constraints.txt refreshed ($(grep -vc '^#' constraints.txt) packages)"
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install "${PIP_FLAGS[@]}" -c constraints.txt -e ".[test]"

# the web map's JavaScript (MapLibre GL JS) from the npm registry, served by the app offline
if command -v npm >/dev/null 2>&1; then
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "setup: npm not found; the web map (/map) needs it once: cd web && npm ci"
fi
echo "setup: done. Run '$VENV/bin/buque demo' (or '$VENV/bin/buque --help'); tests: '$VENV/bin/python -m pytest'."
