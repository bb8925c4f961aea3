#!/usr/bin/env python3
"""webrtc 0.17.2 (mock-player) vs 0.21.x (player21): the scenarios of run.sh.

Every run starts a fresh `signalling` and `mock-streamer` (release, 127.0.0.1 only), runs one
player process (A = mock-player on webrtc 0.17.2, B = player21 on webrtc 0.21.x) against them
and samples /proc/<pid>/stat (utime+stime), /proc/<pid>/status (VmRSS, VmHWM) and
/proc/<pid>/fd of the player process every 0.25 s. A and B alternate, run by run.
Prints one table of medians over the runs; raw samples and reports stay in the output dir.
Stdlib only. Usage: compare.py BIN_DIR PLAYER21 OUT_DIR (env: RUNS, SCENARIOS, BASE_PORT).
"""
import json, os, statistics, subprocess, sys, time, urllib.request, socket

BIN, P21, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
RUNS = int(os.environ.get("RUNS", "3"))
BASE = int(os.environ.get("BASE_PORT", "29400"))
SCENARIOS = os.environ.get("SCENARIOS", "load300,burst100,churn").split(",")
TICK = os.sysconf("SC_CLK_TCK")
# The streamer: its default 1280x720 at 30 fps, H.264, 1 Mbit/s (as mock-player/bench/load-300.sh).
STREAMER_ARGS = ["--bitrate", "1000000"]

# name: (players, ramp per s, seconds each player stays)
SHAPES = {
    "load300": (300, 50, 30),  # 300 players receiving; CPU and memory per player
    "burst100": (100, 10000, 8),  # 100 players joining at once; first frame
    "churn": (1000, 50, 2),  # 1,000 join/leave cycles, ~100 present at a time; growth
}


def wait_until(what, check, secs=15):
    end = time.time() + secs
    while time.time() < end:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"compare.py: {what} not up after {secs} s")


def proc(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, rss, hwm, len(os.listdir(f"/proc/{pid}/fd"))


def one_run(side, scenario, d):
    players, ramp, stay = SHAPES[scenario]
    os.makedirs(d, exist_ok=True)
    sp, pp = BASE + 1, BASE + 2
    sig = subprocess.Popen([f"{BIN}/signalling", "--no_config", "--streamer_port", str(sp), "--player_port", str(pp),
                            "--sfu_port", str(BASE + 3), "--log_level_console", "warn", "--rest_api", "--rate_limit", "100000000",
                            "--rate_limit_burst", "100000000"],
                           stdout=open(f"{d}/signalling.log", "w"), stderr=subprocess.STDOUT)
    st = None
    try:
        wait_until("signalling", lambda: socket.create_connection(("127.0.0.1", pp), 1).close() or True)
        st = subprocess.Popen([f"{BIN}/mock-streamer", "--url", f"ws://127.0.0.1:{sp}", *STREAMER_ARGS],
                              stdout=open(f"{d}/streamer.log", "w"), stderr=subprocess.STDOUT)
        wait_until("mock-streamer", lambda: json.load(urllib.request.urlopen(f"http://127.0.0.1:{pp}/api/streamers", timeout=1)))
        time.sleep(1)  # the encoder's first keyframe cycle
        url = f"ws://127.0.0.1:{pp}"
        report = f"{d}/report.json"
        if side == "A":
            cmd = [f"{BIN}/mock-player", "--url", url, "--players", str(players), "--ramp", str(ramp),
                   "--max-joining", str(players), "--duration", str(stay), "--progress", "off", "--report", report]
        else:
            cmd = [P21, "--url", url, "--players", str(players), "--ramp", str(ramp), "--duration", str(stay),
                   "--report", report]
        t0 = time.time()
        p = subprocess.Popen(cmd, stdout=open(f"{d}/player.out", "w"), stderr=subprocess.STDOUT)
        samples = []
        while p.poll() is None:
            try:
                samples.append((time.time() - t0, *proc(p.pid)))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
            time.sleep(0.25)
        wall = time.time() - t0
    finally:
        for child in (st, sig):
            if child:
                child.terminate()
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()
    json.dump({"exit": p.returncode, "wall": wall, "samples": samples}, open(f"{d}/samples.json", "w"))
    rep = json.load(open(report))
    return summarise(scenario, rep, samples, wall)


def pct(v, q):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[max(1, min(len(v), int(-(-len(v) * q // 1)))) - 1]


def joins(rep, key):
    return [p["join"][key] for p in rep["player_stats"] if p.get("join", {}).get(key) is not None]


def window(samples, a, b):
    w = [s for s in samples if a <= s[0] <= b]
    return w if len(w) >= 2 else samples


def slope(xs, ys):
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def summarise(scenario, rep, samples, wall):
    players, ramp, stay = SHAPES[scenario]
    passed = sum(1 for p in rep["player_stats"] if p.get("error") in (None, "") and p["join"].get("first_rtp_ms") is not None)
    row = {"passed": passed, "players": players}
    if scenario == "load300":
        # CPU while all players are present: from 2 s after the last start to 1 s before the first leaves.
        w = window(samples, players / ramp + 2, stay - 1)
        cpu = (w[-1][1] - w[0][1]) / (w[-1][0] - w[0][0])
        row["cpu % of a core per player (all present)"] = 100 * cpu / players
        row["cpu % of a core per player (whole run)"] = 100 * samples[-1][1] / wall / players
        row["peak RSS MB per player"] = max(s[3] for s in samples) / 1024 / players
        row["video frames received"] = rep["total_video_frames"]
    if scenario in ("burst100", "load300"):
        for key, name in [("first_rtp_ms", "first RTP"), ("ice_connected_ms", "ICE connected"),
                          ("dtls_connected_ms", "DTLS connected")]:
            v = joins(rep, key)
            row[f"{name} p50 ms"] = pct(v, 0.5)
            row[f"{name} p99 ms"] = pct(v, 0.99)
    if scenario == "churn":
        # Growth per 1,000 joins: the least-squares slope of RSS and open fds against joins
        # started, while the population is steady (after the first players left, until the last started).
        w = window(samples, stay + 2, players / ramp)
        started = [min(players, ramp * s[0]) for s in w]
        row["RSS growth MB per 1000 joins"] = slope(started, [s[2] / 1024 for s in w]) * 1000
        row["fd growth per 1000 joins"] = slope(started, [s[4] for s in w]) * 1000
        row["peak RSS MB"] = max(s[3] for s in samples) / 1024
        row["open fds at the last sample"] = samples[-1][4]
    return row


def main():
    os.makedirs(OUT, exist_ok=True)
    results = {}
    load = []
    for scenario in SCENARIOS:
        for r in range(1, RUNS + 1):
            for side in ("A", "B"):
                load.append(os.getloadavg()[0])
                row = one_run(side, scenario, f"{OUT}/{scenario}-{side}-{r}")
                results.setdefault((scenario, side), []).append(row)
                print(f"{scenario} {side} run {r}: " + ", ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), file=sys.stderr, flush=True)
    json.dump({f"{k[0]}/{k[1]}": v for k, v in results.items()}, open(f"{OUT}/results.json", "w"), indent=1)
    print(f"\n{'scenario / figure':58} {'0.17.2 (mock-player)':>22} {'0.21.1 (player21)':>22}   runs: {RUNS}")
    for scenario in SCENARIOS:
        a, b = results[(scenario, "A")], results[(scenario, "B")]
        for key in a[0]:
            if key == "players":
                continue
            def med(rows):
                vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
                if key == "passed":
                    return f"{min(vals)}/{rows[0]['players']} (min)"
                return f"{statistics.median(vals):.3f}" if vals else "-"
            print(f"{scenario + ' / ' + key:58} {med(a):>22} {med(b):>22}")
    print(f"load average (1 min) at the start of each run: min {min(load):.1f}, median {statistics.median(load):.1f}, "
          f"max {max(load):.1f}; cores: {os.cpu_count()}")


main()
