#!/usr/bin/env bash
# Fetch, build and start Epic's reference signalling server (Wilbur, SignallingWebServer in
# EpicGamesExt/PixelStreamingInfrastructure) on 127.0.0.1, for `bench --compare-url`.
#
#   e2e/bench/reference-server.sh [DIR]    # DIR default: ${TMPDIR:-/tmp}/wilbur-ref
#
# Prints the PID of its node process (for --compare-pid / --server-pid) on stdout; stop it
# with `kill PID`. Its output goes to DIR/wilbur.log.
# Environment: WILBUR_REPO (git URL or path of a clone), WILBUR_COMMIT, PLAYER_PORT (8080),
# STREAMER_PORT (8888), SFU_PORT (8889).
set -euo pipefail

REPO=${WILBUR_REPO:-https://github.com/EpicGamesExt/PixelStreamingInfrastructure.git}
COMMIT=${WILBUR_COMMIT:-bb36694b5a046fa7964739f0dc5afe12ee388ab7}
DIR=${1:-${TMPDIR:-/tmp}/wilbur-ref}
PLAYER_PORT=${PLAYER_PORT:-8080} STREAMER_PORT=${STREAMER_PORT:-8888} SFU_PORT=${SFU_PORT:-8889}

die() { echo "reference-server.sh: $*" >&2; exit 1; }
log() { echo "reference-server.sh: $*" >&2; }

for tool in git node npm; do
    command -v "$tool" >/dev/null || die "'$tool' not found in PATH (Wilbur needs git, Node >= 20 and npm)"
done
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || die "Node $(node --version) is too old; Wilbur needs Node >= 20"
for port in "$PLAYER_PORT" "$STREAMER_PORT" "$SFU_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "127.0.0.1:$port is already in use"; fi
done

if [ ! -d "$DIR/.git" ]; then
    [ ! -e "$DIR" ] || [ -z "$(ls -A "$DIR")" ] || die "$DIR exists and is not a git clone; give an empty or new directory"
    log "cloning $REPO into $DIR"
    git clone -q "$REPO" "$DIR" || die "git clone $REPO failed"
fi
git -C "$DIR" checkout -q "$COMMIT" || die "commit $COMMIT not found in $DIR"
cd "$DIR"
DIR=$PWD

if [ ! -f SignallingWebServer/dist/index.js ]; then
    log "npm ci + build (Common, Signalling, SignallingWebServer)"
    npm ci --no-audit --no-fund --workspace=Common --workspace=Signalling --workspace=SignallingWebServer >&2 \
        || die "npm ci failed (is the npm registry reachable?)"
    (cd Common && npm run build:cjs >&2) || die "building Common failed"
    (cd Signalling && npm run build:cjs >&2) || die "building Signalling failed"
    (cd SignallingWebServer && npm run build >&2) || die "building SignallingWebServer failed"
fi

# Wilbur has no bind-address option (its WebSocket servers listen on every interface): this
# preload makes every listening socket of the process bind to 127.0.0.1.
cat > loopback.cjs <<'EOF'
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    const a = args[0];
    if (a !== null && typeof a === 'object') {
        if (a.path === undefined && a.fd === undefined && a.handle === undefined && a._handle === undefined) {
            args[0] = { ...a, host: '127.0.0.1' };
        }
    } else if (typeof args[1] === 'string' || args[1] === undefined || args[1] === null) {
        args[1] = '127.0.0.1';
    } else {
        args.splice(1, 0, '127.0.0.1');
    }
    return listen.apply(this, args);
};
EOF

# N connections need N descriptors in the server too.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

# --no_config: ignore config.json (static files on port 80, https redirect); no web server,
# REST API or stdin. Logging at error only: at info it logs every signalling message to a file.
cd SignallingWebServer
node --require "$DIR/loopback.cjs" dist/index.js --no_config \
    --player_port "$PLAYER_PORT" --streamer_port "$STREAMER_PORT" --sfu_port "$SFU_PORT" \
    --log_folder "$DIR/logs" --log_level_console error --log_level_file error \
    </dev/null >"$DIR/wilbur.log" 2>&1 &
pid=$!

for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { cat "$DIR/wilbur.log" >&2; die "Wilbur exited at start (log above)"; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$PLAYER_PORT") 2>/dev/null \
        && (exec 3<>"/dev/tcp/127.0.0.1/$STREAMER_PORT") 2>/dev/null; then
        log "Wilbur $(git rev-parse --short HEAD) listening on 127.0.0.1: player $PLAYER_PORT, streamer $STREAMER_PORT, SFU $SFU_PORT (open-file limit $(ulimit -n))"
        echo "$pid"
        exit 0
    fi
    sleep 0.1
done
kill "$pid"
die "Wilbur did not listen on 127.0.0.1:$PLAYER_PORT and :$STREAMER_PORT within 10 s (see $DIR/wilbur.log)"
