#!/usr/bin/env bash
# make bench: one run that measures every performance target of issues 2-5 against the
# floor measured in the same run, and prints each ratio with its target.
#
#   1. Go benchmarks of the hot paths (engine, API key, JWT vs stdlib, RFC 9421, memory
#      limiter, RLS, ratelimit stage);
#   2. loopback load runs, each target alternated RUNS times with its floor (always-allow
#      ext_authz/RLS on the same gRPC stack, bare httputil.ReverseProxy), medians kept:
#      API key (ext_authz and proxy), ES256 JWT cache hit, hmac-sha256 1 KiB, RLS and the
#      ratelimit stage on memory and on a redis-server this script starts, plus fixed-rate
#      runs at half the measured capacity: the proxy's alternating its requests between
#      the bare proxy and Portcullis (latency added), the Valkey path's one side at a time;
#   3. test/load/results/summary.txt, printed at the end.
# Servers (Portcullis, floor) are pinned to CPU 1; the load generator and the upstream
# to CPU 0; redis-server is not pinned (see docs/performance.md). Everything listens on
# 127.0.0.1 (free ports). A target that cannot run is reported with its reason and the
# script goes on; the exit status is non-zero only when nothing could be measured
# (build failure).
#
# Environment: RUNS (3), DUR (5s), WARMUP (1s), CONC (64), BENCHTIME (0.5s), COUNT (3),
# HMAC_POOL (pre-signed requests per hmac run, 400000), BENCH_LOG_LEVEL (info: the
# default, one decision log line per request), QUICK=1 (a fast smoke run), ONLY (a bash
# regex: only the pairs whose name matches, e.g. ONLY=apikey; "go" for the Go benchmarks).
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "${QUICK:-0}" = 1 ]; then
  RUNS=${RUNS:-1} DUR=${DUR:-1s} WARMUP=${WARMUP:-300ms} BENCHTIME=${BENCHTIME:-100ms} COUNT=${COUNT:-1}
fi
RUNS=${RUNS:-3}; DUR=${DUR:-5s}; WARMUP=${WARMUP:-1s}; CONC=${CONC:-64}
BENCHTIME=${BENCHTIME:-0.5s}; COUNT=${COUNT:-3}; HMAC_POOL=${HMAC_POOL:-400000}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
out=${OUT:-test/load/results}
mkdir -p "$out" bin || exit 1
tmp=$(mktemp -d) || exit 1
load="$out/load.txt" fails="$out/failures.txt" meta="$out/meta.txt" gobench="$out/gobench.txt"
: > "$load"; : > "$fails"; : > "$meta"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# cpu0/cpu1 prefix a command with its pinning. They are arrays, not a function, so a
# background "${cpu1[@]}" cmd & is one process whose pid is $! (taskset execs cmd): a
# function run in the background would be a subshell, and killing it would orphan cmd.
cpu0=() cpu1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then cpu0=(taskset -c 0) cpu1=(taskset -c 1); fi
note() { echo "$*" | tee -a "$meta"; }
fail() { printf '%s\t%s\n' "$1" "$2" | tee -a "$fails" >&2; }
# free_port prints a loopback port nothing listens on (20 random tries).
free_port() {
  local p
  for _ in $(seq 1 20); do
    p=$(( (RANDOM % 30000) + 20000 ))
    (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}
# wait_port PORT PID: up to 10 s for PORT to accept, while PID lives.
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
stop() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

note "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3-)"
note "redis:   $(redis-server --version 2>/dev/null || echo 'redis-server not found')"
note "load before: $(uptime | sed 's/.*load average/load average/')"
note "settings: RUNS=$RUNS DUR=$DUR WARMUP=$WARMUP CONC=$CONC BENCHTIME=$BENCHTIME COUNT=$COUNT log.level=$LOG_LEVEL; servers on CPU 1, loadgen+upstream on CPU 0, redis unpinned"

echo "== building"
for t in portcullis:./cmd/portcullis echo:./examples/echo loadgen:./test/load/loadgen floor:./test/load/floor benchsum:./test/load/benchsum; do
  go build -o "bin/${t%%:*}" "${t#*:}" || { echo "bench: cannot build ${t#*:}" >&2; exit 1; }
done

echo "== go benchmarks (benchtime $BENCHTIME, count $COUNT)"
: > "$gobench"
if [[ go =~ ${ONLY:-.} ]]; then
go test -run '^$' -benchmem -benchtime "$BENCHTIME" -count "$COUNT" \
  -bench '^Benchmark(RouteLookup|Decide|DecideAPIKey|Verify|SignatureBase|VerifyHMAC1KiB|AuthenticateRFC9421HMAC1KiBWithReplay|MemoryTake|ShouldRateLimitMemory|Check)$' \
  ./pkg/engine/ ./filters/ ./filters/jwt/ ./pkg/httpsig/ ./filters/hmac/ ./pkg/store/ ./pkg/rls/ ./filters/ratelimit/ \
  > "$gobench" 2>&1 || fail "go-benchmarks" "go test -bench failed: $(grep -m1 -E 'FAIL|panic|error' "$gobench")"
grep -E '^(Benchmark|ok|FAIL)' "$gobench"
fi

echo "== load"
up_port=$(free_port) || { echo "bench: no free port" >&2; exit 1; }
"${cpu0[@]}" bin/echo -addr "127.0.0.1:$up_port" >/dev/null 2>&1 &
up_pid=$!; pids+=("$up_pid")
wait_port "$up_port" "$up_pid" || { echo "bench: the echo upstream did not start" >&2; exit 1; }
fl_grpc=$(free_port); fl_http=$(free_port)
GOGC=400 "${cpu1[@]}" bin/floor -grpc "127.0.0.1:$fl_grpc" -proxy "127.0.0.1:$fl_http" -upstream "http://127.0.0.1:$up_port" &
fl_pid=$!; pids+=("$fl_pid")
{ wait_port "$fl_grpc" "$fl_pid" && wait_port "$fl_http" "$fl_pid"; } || { echo "bench: the floor servers did not start" >&2; exit 1; }

# lg LABEL ARGS...: one bounded loadgen run; its result line goes to load.txt, a failure
# (non-zero exit, with loadgen's reason) to failures.txt.
lg() {
  local label=$1 err="$tmp/lg.err"; shift
  local line
  line=$("${cpu0[@]}" timeout --kill-after=5s 300s bin/loadgen -c "$CONC" -d "$DUR" -warmup "$WARMUP" -label "$label" "$@" 2>"$err")
  local rc=$?
  [ -n "$line" ] && echo "$line" | tee -a "$load"
  grep -v -E '^loadgen: (.*: )?first error' "$err" | sed "s|^|$label: |" >&2
  [ $rc -eq 0 ] || fail "$label" "exit $rc: $(tail -n1 "$err" | cut -c1-300)"
}

# pair NAME FLOOR_ARGS -- TARGET_ARGS: RUNS alternations of the floor and the target.
pair() {
  local name=$1; shift
  [[ $name =~ ${ONLY:-.} ]] || return 0
  local floor=() target=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do floor+=("$1"); shift; done
  shift; target=("$@")
  for _ in $(seq 1 "$RUNS"); do
    lg "$name/floor" "${floor[@]}"
    lg "$name/target" "${target[@]}"
  done
}

# portcullis CONFIG: starts Portcullis pinned to CPU 1; sets pc_pid, pc_grpc, pc_http,
# or returns 1 with the reason in why. A start is tried three times on fresh ports: a
# port free_port found free can be taken before Portcullis binds it (an outgoing
# connection's local port; the range overlaps the ephemeral one), and its stderr, which
# carries the decision log during the runs, goes to /dev/null, so a lost race is only
# seen as a start that did not come up.
portcullis() {
  local admin
  for _ in 1 2 3; do
    pc_grpc=$(free_port); pc_http=$(free_port); admin=$(free_port)
    PORTCULLIS_LISTENERS_PROXY="127.0.0.1:$pc_http" PORTCULLIS_LISTENERS_GRPC="127.0.0.1:$pc_grpc" \
    PORTCULLIS_LISTENERS_ADMIN="127.0.0.1:$admin" PORTCULLIS_UPSTREAM_URL="http://127.0.0.1:$up_port" \
    PORTCULLIS_LOG_LEVEL=$LOG_LEVEL \
      "${cpu1[@]}" bin/portcullis serve --config "$1" --watch-interval 0 >/dev/null 2>&1 &
    pc_pid=$!; pids+=("$pc_pid")
    wait_port "$pc_http" "$pc_pid" && wait_port "$pc_grpc" "$pc_pid" && return 0
    stop "$pc_pid"
  done
  why="portcullis with $1 did not start (3 tries): $(bin/portcullis validate --config "$1" 2>&1 | head -n3 | tr '\n' ' ' | cut -c1-300)"
  return 1
}
ext_floor=(-mode extauthz -target "127.0.0.1:$fl_grpc")
rls_floor=(-mode rls -target "127.0.0.1:$fl_grpc" -domain bench -desc remote_address=127.0.0.1)

# fixed_rate PAIR FLOOR_ARGS -- TARGET_ARGS: one open-loop run each at half the
# target's median closed-loop rate.
fixed_rate() {
  local name=$1 cap; shift
  [[ $name =~ ${ONLY:-.} ]] || return 0
  if ! cap=$(bin/benchsum -load "$load" -capacity "$name/target" 2>&1); then fail "$name/rate" "$cap"; return; fi
  local rate=$(( ${cap%.*} / 2 )) floor=()
  while [ "$1" != -- ]; do floor+=("$1"); shift; done; shift
  lg "$name/rate-floor" "${floor[@]}" -rate "$rate"
  lg "$name/rate-target" "$@" -rate "$rate"
}

# interleaved_rate PAIR FLOOR_URL TARGET_ARGS: RUNS open-loop runs at half the target's
# median closed-loop rate, each request going alternately to the floor and to the target
# (both running, both pinned to CPU 1), so each side gets a quarter of that rate and the
# two latencies of a run are read over the same seconds of the same machine.
interleaved_rate() {
  local name=$1 floor_url=$2 cap; shift 2
  [[ $name =~ ${ONLY:-.} ]] || return 0
  if ! cap=$(bin/benchsum -load "$load" -capacity "$name/target" 2>&1); then fail "$name/rate" "$cap"; return; fi
  local rate=$(( ${cap%.*} / 2 ))
  for _ in $(seq 1 "$RUNS"); do
    lg "$name/rate-floor" -mode http -target "$floor_url" -label2 "$name/rate-target" "$@" -rate "$rate"
  done
}

echo "-- issue 2: API key (examples/quickstart; then log.decisions: none)"
key=$(cat examples/quickstart/demo-key.txt)
if portcullis examples/quickstart/portcullis.yaml; then
  pair extauthz-apikey "${ext_floor[@]}" -- -mode extauthz -target "127.0.0.1:$pc_grpc" -H "x-api-key: $key"
  pair proxy-apikey -mode http -target "http://127.0.0.1:$fl_http/api/hello" -- \
    -mode http -target "http://127.0.0.1:$pc_http/api/hello" -H "X-API-Key: $key"
  # Latency added per request, read below saturation (the closed loop measures throughput).
  interleaved_rate proxy-apikey "http://127.0.0.1:$fl_http/api/hello" \
    -target2 "http://127.0.0.1:$pc_http/api/hello" -H2 "X-API-Key: $key"
  stop "$pc_pid"
else fail extauthz-apikey "$why"; fail proxy-apikey "$why"; fi
if portcullis test/load/configs/apikey-nolog.yaml; then
  pair extauthz-apikey-nolog "${ext_floor[@]}" -- -mode extauthz -target "127.0.0.1:$pc_grpc" -H "x-api-key: $key"
  stop "$pc_pid"
else fail extauthz-apikey-nolog "$why"; fi

echo "-- issue 3: ES256 JWT, cache hit (test/load/configs/jwt.yaml)"
if ! token=$(bin/portcullis token new --key test/load/configs/jwt-key.jwk --ttl 1h \
      --claims "$(cat test/load/configs/jwt-claims.json)" 2>&1); then
  fail extauthz-jwt "token new: $token"
elif portcullis test/load/configs/jwt.yaml; then
  pair extauthz-jwt "${ext_floor[@]}" -- -mode extauthz -target "127.0.0.1:$pc_grpc" -H "authorization: Bearer $token"
  stop "$pc_pid"
else fail extauthz-jwt "$why"; fi

echo "-- issue 4: hmac-sha256 RFC 9421, 1 KiB raw_body, replay on (test/load/configs/hmac.yaml)"
if portcullis test/load/configs/hmac.yaml; then
  # The floor gets the same 1 KiB body, so both sides carry the same bytes.
  pair extauthz-hmac "${ext_floor[@]}" -body-bytes 1024 -- -mode extauthz -target "127.0.0.1:$pc_grpc" \
    -body-bytes 1024 -hmac-key-id bench-2025 -hmac-secret-file test/load/configs/hmac-secret.txt -n "$HMAC_POOL"
  stop "$pc_pid"
else fail extauthz-hmac "$why"; fi

# ratelimit_pairs NAME: RLS and ext_authz ratelimit-stage pairs against the running Portcullis.
ratelimit_pairs() {
  pair "rls-$1" "${rls_floor[@]}" -- -mode rls -target "127.0.0.1:$pc_grpc" -domain bench -desc remote_address=127.0.0.1
  pair "extauthz-ratelimit-$1" "${ext_floor[@]}" -- -mode extauthz -target "127.0.0.1:$pc_grpc"
}

echo "-- issue 5: rate limits, memory store (test/load/configs/ratelimit-memory.yaml)"
if portcullis test/load/configs/ratelimit-memory.yaml; then
  ratelimit_pairs memory
  stop "$pc_pid"
else fail rls-memory "$why"; fail extauthz-ratelimit-memory "$why"; fi


echo "-- issue 5: rate limits, Valkey store (test/load/configs/ratelimit-valkey.yaml)"
rport=$(free_port)
# redis-server stands for a store on other hardware: pinned behind the generator's
# saturated core, each round trip waited for that core (p50 1.7 ms from write to reply
# in a trace, p10 0.15 ms), which measures this machine's core sharing, not the sidecar.
# Unpinned, the kernel runs it on whichever core is free; its CPU still comes out of the
# same two cores.
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --dir "$tmp" --loglevel warning >"$tmp/redis.log" 2>&1 &
redis_pid=$!; pids+=("$redis_pid")
if ! wait_port "$rport" "$redis_pid"; then
  why="redis-server did not start: $(tail -n1 "$tmp/redis.log")"
  fail rls-valkey "$why"; fail extauthz-ratelimit-valkey "$why"
else
  sed "s/127\.0\.0\.1:16379/127.0.0.1:$rport/" test/load/configs/ratelimit-valkey.yaml > "$tmp/ratelimit-valkey.yaml"
  if portcullis "$tmp/ratelimit-valkey.yaml"; then
    ratelimit_pairs valkey
    fixed_rate rls-valkey "${rls_floor[@]}" -- -mode rls -target "127.0.0.1:$pc_grpc" -domain bench -desc remote_address=127.0.0.1
    fixed_rate extauthz-ratelimit-valkey "${ext_floor[@]}" -- -mode extauthz -target "127.0.0.1:$pc_grpc"
    stop "$pc_pid"
  else fail rls-valkey "$why"; fail extauthz-ratelimit-valkey "$why"; fi
fi
stop "$redis_pid"

note "load after:  $(uptime | sed 's/.*load average/load average/')"
echo
bin/benchsum -load "$load" -gobench "$gobench" -failures "$fails" -meta "$meta" | tee "$out/summary.txt"
