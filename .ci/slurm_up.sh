#!/usr/bin/env bash
# Start a real one-node SLURM cluster on this machine (root, no systemd) for the workflow tests.
#
# Installs Debian's slurm-wlm and munge when missing, writes /etc/slurm/slurm.conf at the
# DEFAULT path (the SLURM executor plugin's job steps drop SLURM_* variables, so a config named
# only by SLURM_CONF would not be found inside jobs), declares one node with fake GPUs (Gres
# backed by /dev/null and other always-present files) so `gpu=1` rules schedule, keeps finished
# jobs visible to squeue for MinJobAge seconds (the status command used without slurmdbd), and
# starts munged, slurmctld and slurmd as plain daemons. Their process ids go to
# /run/lcm-slurm/*.pid; .ci/slurm_down.sh stops exactly those processes.
#
# The node declares more CPUs, memory and GPUs than the machine has
# (SlurmdParameters=config_overrides) so the profile's real per-rule requests (8 CPUs for
# fMRIPrep, 64 GB for pretraining) schedule on a small CI machine; nothing enforces them (no
# cgroups), jobs just share the cores. Enough of each that jobs the workflow could run at once
# are not queued behind one another: the SLURM test's two-task pretraining (16 CPUs) beside its
# full run's jobs, and that run's finetuning and embedding beside its evaluation (GPU rules):
# with 16 CPUs and one GPU they waited (the SLURM test's setup ~3 minutes longer on 2 cores).
set -euo pipefail

[[ $(id -u) -eq 0 ]] || { echo "slurm_up: must run as root" >&2; exit 1; }
RUN=/run/lcm-slurm
mkdir -p "$RUN" /var/log/slurm /var/spool/slurmctld /var/spool/slurmd /etc/slurm

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

HOST=$(hostname -s)
CPUS=${LCM_SLURM_CPUS:-64}
MEM_MB=${LCM_SLURM_MEM_MB:-524288}
# Fake GPUs, one device file each (slurmd 22.05 counts none for a Count without File), from
# files every Linux container has: at most 4.
GPUS=${LCM_SLURM_GPUS:-4}
GPU_FILES=(/dev/null /dev/zero /dev/full /dev/urandom)
((GPUS >= 1 && GPUS <= ${#GPU_FILES[@]})) ||
    { echo "slurm_up: LCM_SLURM_GPUS must be 1 to ${#GPU_FILES[@]}" >&2; exit 1; }

cat > /etc/slurm/slurm.conf <<CONF
# Written by .ci/slurm_up.sh: a one-node test cluster (not for production).
ClusterName=lcmci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${RUN}/slurmctld.pid
SlurmdPidFile=${RUN}/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
# Finished jobs stay visible to squeue this long: the executor plugin's status command, and the
# SLURM test's scontrol queries, which on a loaded machine came after 300 s had passed.
MinJobAge=3600
GresTypes=gpu
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} Gres=gpu:${GPUS} State=UNKNOWN
PartitionName=lcmtest Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
CONF

{
    echo "# Fake GPUs: let rules requesting gpu=1 schedule on a machine without one."
    for file in "${GPU_FILES[@]:0:GPUS}"; do
        echo "NodeName=${HOST} Name=gpu File=${file}"
    done
} > /etc/slurm/gres.conf

# munge: a key (the package usually creates one) and a daemon running as root.
if [[ ! -s /etc/munge/munge.key ]]; then
    (command -v mungekey >/dev/null && mungekey --create --force) ||
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown root:root /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown -R root:root /run/munge /var/lib/munge /var/log/munge /etc/munge
if ! [[ -f $RUN/munged.pid ]] || ! kill -0 "$(cat "$RUN/munged.pid")" 2>/dev/null; then
    munged --force --pid-file="$RUN/munged.pid"
fi

start_daemon() {  # name, command...: start unless its pid file names a live process
    local name=$1; shift
    if [[ -f $RUN/$name.pid ]] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
        return
    fi
    "$@"
}
start_daemon slurmctld slurmctld -c
start_daemon slurmd slurmd

# Wait until the node is idle (slurmd registered and the fake GPU accepted).
for _ in $(seq 60); do
    state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n1 || true)
    if [[ $state == idle* || $state == mix* ]]; then
        echo "slurm_up: node ${HOST} is ${state} in partition lcmtest"
        exit 0
    fi
    sleep 1
done
echo "slurm_up: node did not become idle (state: ${state:-unknown}); see /var/log/slurm" >&2
tail -n 20 /var/log/slurm/slurmd.log /var/log/slurm/slurmctld.log >&2 || true
exit 1
