#!/usr/bin/env bash
# `npm start` as the README gives it, on free ports and a scratch data directory: passes when
# com.atproto.server.describeServer answers within a minute, then stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
port=$(free_port)
plc_port=$(free_port)
data=$(mktemp -d)
log="$data/start.log"
PDS_PORT=$port PORTAGE_PLC_PORT=$plc_port PDS_DATA_DIRECTORY="$data/data" setsid npm start >"$log" 2>&1 &
pid=$!
stop() {
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
trap stop EXIT
started=$(date +%s)
until answer=$(curl -sf "http://127.0.0.1:$port/xrpc/com.atproto.server.describeServer"); do
  if ! kill -0 "$pid" 2>/dev/null || [ $(($(date +%s) - started)) -ge 60 ]; then
    echo "ci: npm start did not answer describeServer within a minute:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "ci: npm start answered describeServer after $(($(date +%s) - started)) s: $answer"
