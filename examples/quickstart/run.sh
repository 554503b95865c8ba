#!/usr/bin/env bash
# Starts the quickstart: the echo upstream and the Portcullis sidecar in front of it,
# both on loopback, and prints curl lines to try. Ctrl-C stops both.
set -euo pipefail
bin=${1:-bin}
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here/demo-key.txt")

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped."
}
trap cleanup INT TERM EXIT

"$bin/echo" -addr 127.0.0.1:8080 & pids+=($!)
"$bin/portcullis" serve --config "$here/portcullis.yaml" & pids+=($!)

for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:9002/readyz >/dev/null 2>&1 && break
  sleep 0.1
done

cat <<MSG

Portcullis is up: proxy http://127.0.0.1:8000, ext_authz gRPC 127.0.0.1:9001, admin http://127.0.0.1:9002
upstream (echo) http://127.0.0.1:8080. Try:

  # no key: 401
  curl -i http://127.0.0.1:8000/api/hello

  # the demo key: 200, and the echo shows the identity headers Portcullis set
  curl -i -H 'X-API-Key: $key' http://127.0.0.1:8000/api/hello

  # a spoofed identity header is stripped: the echo shows subject "demo", not "admin"
  curl -i -H 'X-API-Key: $key' -H 'X-Portcullis-Subject: admin' http://127.0.0.1:8000/api/hello

Metrics: curl http://127.0.0.1:9002/metrics    Ctrl-C stops both processes.
MSG
wait -n "${pids[@]}"
