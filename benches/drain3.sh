#!/usr/bin/env bash
# Drain3 (Python, default config) and ObserveBridge's miner (Rust, default config) on the same
# Loghub 2k files, printed one after the other: grouping accuracy and lines/s per system.
#
#   benches/drain3.sh [DIR]      DIR defaults to ../shared/data/loghub_2k
#
# Creates a virtualenv under target/drain3-venv (once) and installs drain3 into it from PyPI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-$ROOT/../shared/data/loghub_2k}"
VENV="$ROOT/target/drain3-venv"
DRAIN3_VERSION="0.9.11"

if [ ! -d "$DIR" ]; then
    echo "drain3.sh: $DIR does not exist; pass the Loghub 2k directory" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import drain3" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "drain3==$DRAIN3_VERSION"
fi

echo "## drain3 $DRAIN3_VERSION (Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))"
echo
"$VENV/bin/python" "$ROOT/benches/drain3_bench.py" "$DIR"
echo
echo "## ObserveBridge (Rust, release build)"
echo
(cd "$ROOT" && cargo build --release --quiet --bin observebridge)
"$ROOT/target/release/observebridge" eval loghub "$DIR"
