#!/usr/bin/env bash
# Front-end container: start the Ray head (no CPUs: back ends go to the back-end nodes), wait for the back-end
# nodes, run the campaign, stop the head.
set -euo pipefail
backends="${MYRIAD_BACKENDS:-2}"
ray start --head --port=6379 --num-cpus=0 --dashboard-host=0.0.0.0 --disable-usage-stats
trap 'ray stop' EXIT
for _ in $(seq 120); do
  nodes=$(python -c "import ray; ray.init(address='auto', logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()) - 1)" 2>/dev/null || echo 0)
  [ "$nodes" -ge "$backends" ] && break
  sleep 2
done
myriad collect --ray auto --backends "$backends" --mongo-uri "${MYRIAD_MONGO_URI:-mongodb://mongo:27017/}" \
  --attempts "${MYRIAD_ATTEMPTS:-100}" ${MYRIAD_CAMPAIGN:+--campaign "$MYRIAD_CAMPAIGN"} "$@"
