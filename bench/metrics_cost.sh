#!/bin/bash
# Both servers up (before on core 0, after on core 0 too: one at a time under load), wrk on core 1, alternating rounds.
set -e
cd /work/wt-metrics
start() { # SRC LABEL PORT
  local D=/tmp/mbench/$2; rm -rf $D; mkdir -p $D
  printf '[server]\naddress = "http://127.0.0.1:%s"\nport = %s\naccess_log = false\n\n[authentication]\napi_token_auth = true\n' $3 $3 > $D/packyard.toml
  PYTHONPATH=$1 PACKYARD_DATA_DIR=$D taskset -c 0 .venv-test/bin/python -m packyard run --data-dir $D > $D/log 2>&1 &
  echo $! > $D/pid
  for i in $(seq 1 300); do curl -sf http://127.0.0.1:$3/__ping__ >/dev/null && break; sleep 0.2; done
  local TOKEN=$(PYTHONPATH=$1 PACKYARD_DATA_DIR=$D .venv-test/bin/python -m packyard token create -q --description bench --scope sources:write --sources local-python-src)
  .venv-test/bin/python -c "
import sys; sys.path.insert(0,'.')
from pathlib import Path
from tests.dists import make_wheel
make_wheel(Path('$D/dist'),'bench-probe','1.0')"
  .venv-test/bin/twine upload --non-interactive --disable-progress-bar --repository-url http://127.0.0.1:$3/upload/pypi/local-python-src -u __token__ -p $TOKEN $D/dist/* >/dev/null
}
start /work/wt-metrics-base/src before 18111
start /work/wt-metrics/src after 18112
for p in 18111 18112; do taskset -c 1 wrk -t1 -c16 -d3s http://127.0.0.1:$p/pypi/latest/simple/bench-probe/ >/dev/null; done
for r in 1 2 3 4 5 6; do
  for p in 18111 18112; do
    label=$([ $p = 18111 ] && echo before || echo after)
    echo "$label $(taskset -c 1 wrk -t1 -c16 -d5s -H 'Accept: application/vnd.pypi.simple.v1+json' http://127.0.0.1:$p/pypi/latest/simple/bench-probe/ | grep -E 'Requests/sec' | awk '{print $2}')"
  done
done
kill $(cat /tmp/mbench/before/pid) $(cat /tmp/mbench/after/pid)
