#!/usr/bin/env bash
# Vendor the browser assets the offline HTML export inlines (geo/report/html.py).
# Fetched from the npm registry with `npm pack` (pinned version, integrity checked by npm);
# re-run only to upgrade. Leaflet is BSD-2-Clause (LICENSE copied beside it).
set -euo pipefail
cd "$(dirname "$0")"
LEAFLET_VERSION=1.9.4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "leaflet@${LEAFLET_VERSION}" >/dev/null && tar xzf "leaflet-${LEAFLET_VERSION}.tgz")
rm -rf leaflet && mkdir -p leaflet/images
cp "$tmp/package/dist/leaflet.js" "$tmp/package/dist/leaflet.css" "$tmp/package/LICENSE" leaflet/
cp "$tmp/package/dist/images/"*.png leaflet/images/
echo "$LEAFLET_VERSION" > leaflet/VERSION
echo "leaflet ${LEAFLET_VERSION} -> $(pwd)/leaflet"
