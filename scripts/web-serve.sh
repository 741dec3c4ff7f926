#!/usr/bin/env bash
# One command for the browser explainer: installs its tools (scripts/web-setup.sh),
# builds it and serves it at http://127.0.0.1:8080/ (rebuilding on changes).
# Extra arguments go to `trunk serve` (e.g. --port 9000, --open).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/web-setup.sh
exec trunk serve --release "$@"
