#!/usr/bin/env bash
# The mock player against a Chromium viewer, same libwebrtc sender, same run
# (e2e/tests/feedback.rs, direct), repeated RUNS times beside BUSY busy loops
# (CPU contention, as on a loaded CI machine). Prints each run's bitrates and
# the mock/browser ratio, then the median ratio and the runs under 80 %.
#   e2e/bench/feedback-under-load.sh [RUNS=8] [BUSY=1]
set -uo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-8}
busy=${2:-1}
cargo test -q -p e2e --test feedback --no-run >/dev/null 2>&1 || { echo "build failed" >&2; exit 1; }
pids=()
for _ in $(seq 1 "$busy"); do (while :; do :; done) & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
log=$(mktemp)
ratios=()
for i in $(seq 1 "$runs"); do
  cargo test -q -p e2e --test feedback a_mock_player -- --nocapture >"$log" 2>&1
  browser=$(grep 'Chromium (built-in page)' "$log" | awk '{print $4}')
  mock=$(grep -E '^  mock-player +[0-9]' "$log" | awk '{print $2}')
  if [ -z "$browser" ] || [ -z "$mock" ] || [ "$browser" = 0 ]; then
    echo "run $i: no figures (see $log)"; continue
  fi
  ratio=$(awk -v m="$mock" -v b="$browser" 'BEGIN{printf "%.2f", m/b}')
  ratios+=("$ratio")
  echo "run $i: browser $browser kbit/s, mock $mock kbit/s, ratio $ratio"
done
rm -f "$log"
printf '%s\n' "${ratios[@]}" | sort -n | awk '{r[NR]=$1; if ($1 < 0.8) low++}
  END {if (NR == 0) exit 1; m = NR % 2 ? r[(NR+1)/2] : (r[NR/2] + r[NR/2+1]) / 2;
       printf "median ratio %.2f over %d runs, %d under 0.80, lowest %.2f\n", m, NR, low, r[1]}'
