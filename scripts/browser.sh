#!/usr/bin/env bash
# Make sure a Chromium is there for the web page's browser tests (Debian's chromium package).
# Without root or sudo it only warns: those tests then skip, saying why.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/debian.sh"

if [ -n "${CONVSIM_CHROMIUM:-}" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
  exit 0
fi
echo "browser: chromium is missing: installing the Debian package (for the web page's tests)" >&2
if ! apt_install chromium; then
  echo "browser: could not install chromium; the browser tests will be skipped" >&2
fi
exit 0
