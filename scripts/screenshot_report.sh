#!/usr/bin/env bash
# Screenshot an odyssey HTML report with headless Chromium, to check its layout by eye.
#
#   scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH] [HEIGHT]
#
# Needs Chromium (Debian: apt-get install -y chromium). The page is rendered at
# WIDTH x HEIGHT pixels (default 1300 x 3000); content below HEIGHT is cut off.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH] [HEIGHT]" >&2
  exit 2
fi
report=$(realpath "$1")
out=$(realpath -m "$2")
width=${3:-1300}
height=${4:-3000}
[[ -f "$report" ]] || { echo "no such file: $1" >&2; exit 2; }

browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[[ -n "$browser" ]] || { echo "chromium not found (hint: apt-get install -y chromium)" >&2; exit 2; }

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size="$width,$height" \
  --screenshot="$out" "file://$report" 2>/dev/null
echo "$out"
