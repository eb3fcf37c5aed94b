#!/usr/bin/env bash
# Stops the cluster test/slurm/start-cluster.sh DIR started: its jobs, slurmd, slurmctld and munged, by the pids
# they wrote under DIR (nothing else is touched).
set -uo pipefail
dir="$(realpath "${1:?usage: stop-cluster.sh DIR}")"
export SLURM_CONF="$dir/slurm.conf"
if [ -f "$dir/slurmctld.pid" ]; then
  squeue -h -o '%A' 2>/dev/null | xargs -r scancel 2>/dev/null
  for _ in $(seq 1 20); do [ -z "$(squeue -h -o '%A' 2>/dev/null)" ] && break; sleep 0.5; done
fi
for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
done
exit 0
