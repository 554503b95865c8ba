#!/usr/bin/env bash
# make bench: Go benchmarks of the hot paths, then bounded loopback load runs of both
# front-ends against their floors (always-allow ext_authz on the same gRPC stack, bare
# httputil.ReverseProxy), alternated and repeated so each ratio comes from one run.
# Servers are pinned to CPU 1, the load generator and the upstream to CPU 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}          # load runs per target (the median is reported)
DUR=${DUR:-5s}           # measurement time per run (bounded also by -n)
CONC=${CONC:-64}         # concurrent streams / connections
BENCHTIME=${BENCHTIME:-1s}
out=${OUT:-test/load/results}
mkdir -p "$out" bin
pin() { if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }

echo "== machine"
echo "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3)"

echo "== go benchmarks (benchtime $BENCHTIME, count 3)"
go test -run '^$' -bench . -benchmem -benchtime "$BENCHTIME" -count 3 \
  ./pkg/engine/ ./filters/apikey/ ./filters/ip/ ./pkg/extauthz/ ./proxy/ ./pkg/store/ \
  ./filters/jwt/ ./pkg/httpsig/ ./filters/hmac/ ./filters/ratelimit/ 2>&1 | tee "$out/gobench.txt" | grep -E '^(Benchmark|ok|FAIL)' || true

echo "== load: building"
go build -o bin/portcullis ./cmd/portcullis
go build -o bin/echo ./examples/echo
go build -o bin/loadgen ./test/load/loadgen
go build -o bin/floor ./test/load/floor

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not up" >&2; return 1; }

pin 0 bin/echo -addr 127.0.0.1:18080 >/dev/null 2>&1 & pids+=($!)
wait_port 18080
key=$(cat examples/quickstart/demo-key.txt)

start_portcullis() {
  PORTCULLIS_LISTENERS_PROXY=127.0.0.1:18000 PORTCULLIS_LISTENERS_GRPC=127.0.0.1:19001 \
  PORTCULLIS_LISTENERS_ADMIN=127.0.0.1:19002 PORTCULLIS_UPSTREAM_URL=http://127.0.0.1:18080 \
  PORTCULLIS_LOG_LEVEL=${BENCH_LOG_LEVEL:-info} \
    pin 1 bin/portcullis serve --config examples/quickstart/portcullis.yaml --watch-interval 0 2>/dev/null &
  pids+=($!); wait_port 18000; wait_port 19001
}
start_floor() { pin 1 bin/floor -grpc 127.0.0.1:19101 -proxy 127.0.0.1:18100 -upstream http://127.0.0.1:18080 & pids+=($!); wait_port 18100; wait_port 19101; }
start_portcullis
start_floor

lg() { pin 0 bin/loadgen -d "$DUR" -c "$CONC" "$@"; }
: > "$out/load.txt"
for i in $(seq 1 "$RUNS"); do
  lg -mode extauthz -target 127.0.0.1:19101 -label "extauthz-floor" | tee -a "$out/load.txt"
  lg -mode extauthz -target 127.0.0.1:19001 -H "x-api-key: $key" -label "extauthz-apikey" | tee -a "$out/load.txt"
  lg -mode http -target http://127.0.0.1:18100/api/hello -label "proxy-bare" | tee -a "$out/load.txt"
  lg -mode http -target http://127.0.0.1:18000/api/hello -H "X-API-Key: $key" -label "proxy-apikey" | tee -a "$out/load.txt"
done

echo "== medians of $RUNS runs (c=$CONC, $DUR each)"
awk '
  { label=$1; rps[label]=rps[label] " " $2; p50[label]=p50[label] " " $5; p99[label]=p99[label] " " $7 }
  function med(s,   a, n, i, j, t) { n=split(s, a, " "); for(i=1;i<=n;i++) for(j=i+1;j<=n;j++) if (a[j]+0 < a[i]+0) { t=a[i]; a[i]=a[j]; a[j]=t }; return a[int((n+1)/2)] }
  function us(s) { if (s ~ /ms$/) return s*1000; if (s ~ /µs$/) return s+0; if (s ~ /s$/) return s*1e6; return s+0 }
  END {
    for (l in rps) { split(p50[l], a, " "); m[l]=med(rps[l]); q50=""; q99="";
      n=split(p50[l], x, " "); for(i=1;i<=n;i++) x[i]=us(x[i]); for(i=1;i<=n;i++) q50=q50 " " x[i];
      n=split(p99[l], y, " "); for(i=1;i<=n;i++) y[i]=us(y[i]); for(i=1;i<=n;i++) q99=q99 " " y[i];
      mp50[l]=med(q50); mp99[l]=med(q99);
      printf "%-18s %9.0f req/s  p50 %7.0f µs  p99 %7.0f µs\n", l, m[l], mp50[l], mp99[l] }
    if (m["extauthz-floor"] > 0) printf "ext_authz API key / always-allow floor: %.0f%% (target >= 75%%)\n", 100*m["extauthz-apikey"]/m["extauthz-floor"]
    if (m["proxy-bare"] > 0) printf "proxy API key / bare ReverseProxy:      %.0f%% (target >= 85%%), p50 +%.0f µs (target <= +50 µs)\n", 100*m["proxy-apikey"]/m["proxy-bare"], mp50["proxy-apikey"]-mp50["proxy-bare"]
  }' "$out/load.txt" | tee "$out/summary.txt"
