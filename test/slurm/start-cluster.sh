#!/usr/bin/env bash
# Starts a one-node Slurm cluster on 127.0.0.1 for the executor's tests, everything under DIR: its own munge
# daemon and key, slurmctld and slurmd on free ports, state, spool, logs. Clients reach it through
# SLURM_CONF=DIR/slurm.conf (printed on the last line); test/slurm/stop-cluster.sh DIR stops it. Needs root
# (SlurmUser=root) and the Debian packages slurmctld slurmd slurm-client munge.
set -euo pipefail
dir="$(realpath "${1:?usage: start-cluster.sh DIR}")"
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"

free_port() { # a TCP port nothing listens on
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    ss -Hltn "sport = :$port" | grep -q . || { echo "$port"; return; }
  done
}

# munge: a key of our own, a socket of our own (munged refuses to run as root without --force)
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"

node_line="$(slurmd -C | head -1)" # NodeName=<host> CPUs=… RealMemory=…
host="$(hostname -s)"
cat >"$dir/slurm.conf" <<CONF
ClusterName=fgsmtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$dir/slurm.conf"
slurmctld -i   # -i: ignore state left by an earlier cluster
slurmd
for _ in $(seq 1 60); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then echo "SLURM_CONF=$SLURM_CONF"; exit 0; fi
  sleep 0.5
done
echo "the test Slurm did not come up; logs in $dir" >&2
sinfo >&2 || true
exit 1
