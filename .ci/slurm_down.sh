#!/usr/bin/env bash
# Stop the test cluster started by .ci/slurm_up.sh: exactly the processes whose ids it recorded.
set -uo pipefail
RUN=/run/lcm-slurm
for name in slurmd slurmctld munged; do
    pidfile=$RUN/$name.pid
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
done
echo "slurm_down: stopped"
