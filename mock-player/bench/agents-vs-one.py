#!/usr/bin/env python3
"""Players per core: one mock-player process vs the same players over three agents on this
machine, against the same sender (release `signalling` + `mock-streamer`, 127.0.0.1 only,
a throwaway `redis-server`). A and B alternate run by run; medians are printed.

  A  one process: `mock-player --players N`
  B  three `mock-player agent` processes (started once, idle between runs) driven by a
     coordinator: `mock-player --redis-url … --agents 3 --players N`

CPU is user + system time of the player processes only (for B: the three agents' CPU during
the run, from /proc, idle time between runs excluded; the coordinator's own CPU is reported
separately, it is the coordination overhead). Usage:

  cargo build --release -p signalling -p mock-streamer -p mock-player
  mock-player/bench/agents-vs-one.py [--players 90] [--duration 15] [--runs 3]
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "target", "release")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_port(port, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {port}")


def wait_line(proc, pattern, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if re.search(pattern, line):
            return line
    sys.exit(f"no line matching {pattern!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--players", type=int, default=90)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ramp", type=int, default=30)
    ap.add_argument("--signalling-only", action="store_true",
                    help="players without WebRTC (for the coordination overhead at thousands of players)")
    args = ap.parse_args()
    for b in ("signalling", "mock-streamer", "mock-player"):
        if not os.path.exists(os.path.join(BIN, b)):
            sys.exit(f"build first: cargo build --release -p signalling -p mock-streamer -p mock-player ({b} missing)")
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    tmp = tempfile.mkdtemp(prefix="agents-vs-one-")
    procs = []

    def start(cmd, **kw):
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **kw)
        procs.append(p)
        return p

    try:
        rport, sport, pport, fport = free_port(), free_port(), free_port(), free_port()
        redis_proc = start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no"], stdout=subprocess.DEVNULL)
        start([f"{BIN}/signalling", "--no_config", "--streamer_port", str(sport), "--player_port", str(pport),
               "--sfu_port", str(fport)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(rport, "redis-server")
        wait_port(pport, "signalling")
        start([f"{BIN}/mock-streamer", "--url", f"ws://127.0.0.1:{sport}", "--id", "S", "--width", "320",
               "--height", "240"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # the streamer registers; the first run's join would otherwise fail, not skew
        redis = f"redis://127.0.0.1:{rport}"
        agents = []
        for i in range(3):
            a = start([f"{BIN}/mock-player", "agent", "--redis-url", redis, "--name", f"a{i + 1}",
                       "--capacity", "400"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            wait_line(a, "waiting for runs")
            agents.append(a)
        common = ["--url", f"ws://127.0.0.1:{pport}", "--streamer", "S", "--players", str(args.players),
                  "--ramp", str(args.ramp), "--duration", str(args.duration), "--progress", "off",
                  *(["--signalling-only"] if args.signalling_only else ["--min-fps", "20"])]
        rows = {"A": [], "B": []}
        for run in range(args.runs):
            for side in ("A", "B"):
                report = os.path.join(tmp, f"{side}{run}.json")
                load = os.getloadavg()[0]
                if side == "A":
                    t0 = time.time()
                    p = subprocess.run([f"{BIN}/mock-player", *common, "--report", report],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    usage = os.times()
                    cpu = None  # from children's rusage below
                    wall = time.time() - t0
                    rows[side].append({"wall": wall, "load": load, "code": p.returncode, "report": report,
                                       "children": usage.children_user + usage.children_system})
                else:
                    before = [cpu_of(a.pid) for a in agents]
                    redis0 = cpu_of(redis_proc.pid)
                    t0 = time.time()
                    c0 = os.times()
                    p = subprocess.run([f"{BIN}/mock-player", "--redis-url", redis, "--agents", "3", *common,
                                        "--report", report], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    c1 = os.times()
                    wall = time.time() - t0
                    after = [cpu_of(a.pid) for a in agents]
                    redis_cpu = cpu_of(redis_proc.pid) - redis0
                    cpu = sum(after) - sum(before)
                    rows[side].append({"wall": wall, "load": load, "code": p.returncode, "report": report,
                                       "cpu": cpu, "redis_cpu": redis_cpu, "agents_cpu": [round(x - y, 2) for x, y in zip(after, before)],
                                       "coordinator": (c1.children_user + c1.children_system)
                                       - (c0.children_user + c0.children_system)})
        # A's CPU: children rusage accumulates over A and B's coordinators, so take differences.
        prev = 0.0
        order = [(run, side) for run in range(args.runs) for side in ("A", "B")]
        for run, side in order:
            r = rows[side][run]
            if side == "A":
                r["cpu"] = r["children"] - prev
            prev = r["children"] if side == "A" else prev + r["coordinator"]
        for side in ("A", "B"):
            for r in rows[side]:
                rep = json.load(open(r["report"]))
                r["passed"] = rep.get("passed")
                r["fps_p50"] = (rep.get("fps") or {}).get("p50")
                r["per_player_s"] = r["cpu"] / (args.players * args.duration)
                r["redis_bytes"] = rep.get("redis_bytes")
        kind = "signalling-only" if args.signalling_only else "WebRTC (320x240 30 fps)"
        print(f"{args.players} {kind} players, {args.duration} s, {args.runs} runs each, "
              f"A/B interleaved; cores: {os.cpu_count()}")
        for side, name in (("A", "one process"), ("B", "three agents (sum)")):
            for r in rows[side]:
                extra = (f"  agents {r['agents_cpu']}  coordinator {r['coordinator']:.2f} s  redis {r['redis_cpu']:.2f} s"
                         f"  through redis {r['redis_bytes']} B") if side == "B" else ""
                print(f"  {side} {name:<20} cpu {r['cpu']:.2f} s  passed {r['passed']}/{args.players}  "
                      f"fps p50 {r['fps_p50']}  load {r['load']:.1f}  exit {r['code']}{extra}")
        a = statistics.median(r["cpu"] for r in rows["A"])
        b = statistics.median(r["cpu"] for r in rows["B"])
        print(f"median CPU seconds: one process {a:.2f}, three agents {b:.2f}, ratio B/A {b / a:.3f}")
        coord = statistics.median(r["coordinator"] for r in rows["B"])
        redis_cpu = statistics.median(r["redis_cpu"] for r in rows["B"])
        through = statistics.median(r["redis_bytes"] or 0 for r in rows["B"])
        print(f"median coordination overhead per run: coordinator {coord:.2f} s, redis {redis_cpu:.2f} s of CPU; "
              f"{through / 1e6:.2f} MB through redis, {through / args.players:.0f} B per player")
        print(f"median CPU per player-second: {a / (args.players * args.duration) * 1000:.2f} ms vs "
              f"{b / (args.players * args.duration) * 1000:.2f} ms")
    finally:
        for p in reversed(procs):
            try:
                p.send_signal(signal.SIGINT)
                p.wait(timeout=5)
            except Exception:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
