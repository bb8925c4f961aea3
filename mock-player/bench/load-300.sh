#!/usr/bin/env bash
# The issue-4 target, measured: one mock-player process holding 300 players of a
# 1 Mbit/s, 30 fps, 1280x720 H.264 stream for 30 s. Runs 3 times (RUNS=…) and
# prints, per run and as medians: frames delivered (received by the players /
# sent by the streamer), the player process's CPU and peak memory per player,
# and the join times. Loopback only. Usage: mock-player/bench/load-300.sh
# (RUNS, PLAYERS, DURATION, BASE_PORT, BIN_DIR and PLAYER_BIN change it).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}; PLAYERS=${PLAYERS:-300}; DURATION=${DURATION:-30}
BASE=${BASE_PORT:-28000}
# BIN_DIR: prebuilt signalling, mock-streamer and mock-player (no build); PLAYER_BIN: another
# mock-player to measure (an A/B of two builds against the same server and streamer).
if [ -z "${BIN_DIR:-}" ]; then
  cargo build -q --release -p signalling -p mock-streamer -p mock-player
fi
bin=${BIN_DIR:-target/release}
player_bin=${PLAYER_BIN:-$bin/mock-player}
out=$(mktemp -d)
# Run "$@" until it succeeds (10 s at most): the server listening, the streamer registered.
wait_until() {
  local what=$1; shift
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "load-300.sh: $what is not up after 10 s (logs: $d)" >&2; exit 1
}
echo "cores: $(nproc); players: $PLAYERS; duration: ${DURATION}s; runs: $RUNS; output: $out"
for run in $(seq 1 "$RUNS"); do
  d=$out/run$run; mkdir -p "$d"
  $bin/signalling --no_config --streamer_port $((BASE+1)) --player_port $((BASE+2)) --sfu_port $((BASE+3)) \
    --log_level_console warn --rest_api >"$d/signalling.log" 2>&1 & sig=$!
  wait_until "the signalling server" python3 -c "import socket; socket.create_connection(('127.0.0.1', $((BASE+2))), 1)"
  $bin/mock-streamer --url ws://127.0.0.1:$((BASE+1)) --width 1280 --height 720 --bitrate 1000000 --fps 30 \
    --stats-json "$d/streamer.json" >"$d/streamer.log" 2>&1 & st=$!
  wait_until "the mock streamer" python3 -c "import json, sys, urllib.request
sys.exit(not json.load(urllib.request.urlopen('http://127.0.0.1:$((BASE+2))/api/streamers', timeout=1)))"
  start=$(date +%s.%N)
  # /proc accounting of the player process alone: run it and read its rusage.
  python3 - "$player_bin" "$d" "$PLAYERS" "$DURATION" "$((BASE+2))" <<'PY'
import json, resource, subprocess, sys, time
exe, d, n, dur, port = sys.argv[1:]
t0 = time.time()
p = subprocess.run([exe, "--url", f"ws://127.0.0.1:{port}", "--players", n, "--ramp", "50",
                    "--duration", dur, "--progress", "off", "--report", f"{d}/report.json",
                    "--html", f"{d}/report.html"], stdout=open(f"{d}/player.out", "w"), stderr=subprocess.STDOUT)
wall = time.time() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"exit": p.returncode, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss},
          open(f"{d}/process.json", "w"))
PY
  kill -INT $st; wait $st || true
  kill -TERM $sig; wait $sig || true
done
python3 - "$out" "$RUNS" "$PLAYERS" <<'PY'
import json, statistics, sys
out, runs, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = []
for r in range(1, runs + 1):
    d = f"{out}/run{r}"
    proc = json.load(open(f"{d}/process.json")); rep = json.load(open(f"{d}/report.json"))
    st = json.load(open(f"{d}/streamer.json"))["streamers"][0]
    received = rep["total_video_frames"]
    sent = st["totals"]["frames_sent"]
    row = {
        "passed": f'{rep["passed"]}/{n}',
        "delivered %": 100.0 * received / sent if sent else 0.0,
        "cpu % of a core per player": 100.0 * proc["cpu"] / proc["wall"] / n,
        "MB per player": proc["maxrss_kb"] / 1024 / n,
        "first RTP p50 ms": rep["phases"]["4 first_rtp"]["p50"],
        "first RTP p99 ms": rep["phases"]["4 first_rtp"]["p99"],
        "fps p50": rep["fps"]["p50"],
        "streamer fps": st["frames_encoded"] / proc["wall"],
    }
    rows.append(row)
    print(f"run {r}: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
print("median: " + "  ".join(
    f"{k} {statistics.median([r[k] for r in rows if isinstance(r[k], (int, float))]):.3f}"
    for k in rows[0] if isinstance(rows[0][k], (int, float))))
PY
