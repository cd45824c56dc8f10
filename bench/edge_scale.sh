#!/usr/bin/env bash
# Qdrant Edge at scale through docqa's index code (examples/edge_scale.rs):
# upsert rate, then hybrid search latency while the index settles, and the
# process's peak memory. With --against REV, the same example is built on REV's
# source too (a worktree sharing the target dir, so only docqa recompiles) and
# both are run, one after the other.
#
# Usage: bench/edge_scale.sh [--against REV] [POINTS] [SETTLE_SECONDS]
#        (defaults: 100000 points, 120 s)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
against=""
if [ "${1:-}" = "--against" ]; then against="$2"; shift 2; fi
points="${1:-100000}"; settle="${2:-120}"
build_for_bench
run() {
    echo "== $1" >&2
    "$2" "$points" "$settle"
}
here="$CARGO_TARGET_DIR/release/examples/edge_scale"
cp "$here" "$CARGO_TARGET_DIR/release/examples/edge_scale.head"
if [ -n "$against" ]; then
    tree="$(mktemp -d /tmp/docqa-against.XXXXXX)"
    git worktree add --detach "$tree" "$against" >&2
    trap 'git worktree remove --force "$tree"' EXIT
    cp examples/edge_scale.rs "$tree/examples/"
    (cd "$tree" && cargo build --release --locked --bin docqa --example extractors --example pipeline --example edge_scale >&2)
    cp "$here" "$CARGO_TARGET_DIR/release/examples/edge_scale.against"
    run "$against" "$CARGO_TARGET_DIR/release/examples/edge_scale.against"
fi
run "$(git rev-parse --short HEAD)" "$CARGO_TARGET_DIR/release/examples/edge_scale.head"
