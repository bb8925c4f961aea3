#!/usr/bin/env bash
# webrtc-rs line: 0.17.2 (the real mock-player) vs 0.21.x (player21, this crate), against the
# same sender (release `signalling` + `mock-streamer`), 127.0.0.1 only. Builds what it needs,
# then runs compare.py: per scenario, A and B alternate run by run (RUNS=3), and one table of
# medians is printed. Scenarios (SCENARIOS=load300,burst100,churn):
#   load300  300 players for 30 s: CPU and peak RSS per player, first RTP/connect times
#   burst100 100 players joining at once: first RTP, ICE and DTLS connected p50/p99
#   churn    1,000 join/leave cycles in one process: RSS and fd growth per 1,000 joins
# BUILD_RUNS=N (default 0) first times N interleaved clean release builds of each player
# (fresh target dirs): A = `-p mock-player` in the workspace, B = this crate.
# Usage: e2e/bench/webrtc-line/run.sh [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
echo "cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg); output: $out" >&2

BUILD_RUNS=${BUILD_RUNS:-0}
if [ "$BUILD_RUNS" -gt 0 ]; then
  scratch=$(mktemp -d)
  for r in $(seq 1 "$BUILD_RUNS"); do
    for side in A B; do
      rm -rf "$scratch/$side"
      l0=$(cut -d' ' -f1 /proc/loadavg)
      # Wall time and CPU time (user + system of cargo and every rustc): CPU time is what a
      # shared machine's load disturbs least.
      if [ $side = A ]; then
        (cd "$root" && CARGO_TARGET_DIR="$scratch/A" /usr/bin/time -f "%e %U %S" -o "$scratch/time" \
          cargo build -q --release --locked -p mock-player)
      else
        CARGO_TARGET_DIR="$scratch/B" /usr/bin/time -f "%e %U %S" -o "$scratch/time" \
          cargo build -q --release --locked --manifest-path "$here/Cargo.toml"
      fi
      read -r wall user sys <"$scratch/time"; l1=$(cut -d' ' -f1 /proc/loadavg)
      echo "clean release build $side run $r: wall $wall s, CPU $(echo "$user + $sys" | bc) s (load $l0 -> $l1)" \
        | tee -a "$out/build-times.txt" >&2
    done
  done
  rm -rf "$scratch"
fi

(cd "$root" && cargo build -q --release -p signalling -p mock-streamer -p mock-player)
cargo build -q --release --locked --manifest-path "$here/Cargo.toml"
python3 "$here/compare.py" "$root/target/release" "$here/target/release/player21" "$out" | tee "$out/table.txt"
[ -f "$out/build-times.txt" ] && cat "$out/build-times.txt"
