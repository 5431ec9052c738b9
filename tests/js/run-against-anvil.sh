#!/usr/bin/env bash
# Proves the client scripts themselves are right: start the npm-pinned anvil on a free port
# and run e2e-erc20.mjs and bad-input.mjs against it. Anvil burns the base fee, so FEE_POOL is
# not set; anvil words txpool errors differently from geth, so EXPECT_GETH_ERRORS is not set.
#
#   (cd tests/js && npm ci) && tests/js/run-against-anvil.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ANVIL="$HERE/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
[[ -x "$ANVIL" ]] || { echo "anvil not installed: run (cd tests/js && npm ci)" >&2; exit 2; }

PORT="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
CHAIN_ID=31337
LOG="$(mktemp -t anvil.XXXXXX.log)"

"$ANVIL" --host 127.0.0.1 --port "$PORT" --chain-id "$CHAIN_ID" >"$LOG" 2>&1 &
ANVIL_PID=$!
trap 'kill "$ANVIL_PID" 2>/dev/null || true; wait "$ANVIL_PID" 2>/dev/null || true' EXIT

export RPC_URL="http://127.0.0.1:$PORT" WS_URL="ws://127.0.0.1:$PORT" CHAIN_ID
for _ in $(seq 100); do
  curl -sf -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}' "$RPC_URL" >/dev/null && break
  sleep 0.1
done

status=0
node "$HERE/e2e-erc20.mjs" || status=1
node "$HERE/bad-input.mjs" || status=1
if [[ $status -ne 0 ]]; then echo "anvil log: $LOG"; else rm -f "$LOG"; fi
exit $status
