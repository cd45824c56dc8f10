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
run() {
    echo "== $1" >&2
    "$2" "$points" "$settle"
}
examples="$CARGO_TARGET_DIR/release/examples"
if [ -n "$against" ]; then
    tree="$(mktemp -d /tmp/docqa-against.XXXXXX)"
    git worktree add --detach "$tree" "$against" >&2
    trap 'git worktree remove --force "$tree"' EXIT
    cp examples/edge_scale.rs "$tree/examples/"
    (cd "$tree" && cargo build --release --locked --bin docqa --example extractors --example pipeline --example edge_scale >&2)
    cp "$examples/edge_scale" "$examples/edge_scale.against"
    # Cargo names a workspace's own crate by its path relative to the
    # workspace, so the worktree's build took the place of this tree's, and its
    # sources being older than that build, cargo would take it as fresh.
    touch src/lib.rs
fi
build_for_bench
cp "$examples/edge_scale" "$examples/edge_scale.head"
[ -z "$against" ] || run "$against" "$examples/edge_scale.against"
run "$(git rev-parse --short HEAD)" "$examples/edge_scale.head"
