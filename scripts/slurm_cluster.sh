#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the tests marked `slurm` (README, "Sweeps on GPUs").
#
#   scripts/slurm_cluster.sh start    install Debian's slurmctld, slurmd, slurm-client and munge when missing
#                                     (apt-get, as root), write a slurm.conf for this machine, start munged,
#                                     slurmctld and slurmd, and wait until the node is idle
#   scripts/slurm_cluster.sh stop     stop each daemon by the pid it recorded, and wait until it is gone
#   scripts/slurm_cluster.sh env      print `export SLURM_CONF=...` for the shell that talks to it
#
# Everything lives in $MMX_SLURM_DIR (default /tmp/mmx-slurm): slurm.conf, state, spool, logs, pids; clients find
# the cluster through SLURM_CONF, so nothing under /etc/slurm is touched. No systemd, no cgroups:
# proctrack/linuxproc and task/none. No accounting daemon (slurmdbd): sacct cannot answer here.
#
# Partitions, all on the one node: `low` (the default; preempted by `high`, requeued, GraceTime 20 s), `nograce`
# (the same with GraceTime 0) and `high` (PriorityTier 2, never preempted). Slurm 22.05 (Debian 12) sends the
# user signal on preemption with SlurmctldParameters=preempt_send_user_signal; 23.02 and later spell it
# PreemptParameters=send_user_signal (the script writes the one its Slurm knows).
#
# Exit status 0 when the cluster is up (start) or gone (stop); 3 when it cannot start here (not root and the
# packages are missing, no package registry, a daemon that does not come up), with one line saying why.
set -euo pipefail

DIR=${MMX_SLURM_DIR:-/tmp/mmx-slurm}
CONF=$DIR/slurm.conf
GRACE_S=${MMX_SLURM_GRACE_S:-20}

cannot() {
    echo "slurm_cluster: cannot start a Slurm cluster here: $*" >&2
    exit 3
}

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null && return 0
    [ "$(id -u)" = 0 ] || cannot "slurmctld, slurmd, slurm-client and munge are not installed and this is not root"
    command -v apt-get >/dev/null || cannot "slurmctld, slurmd, slurm-client and munge are not installed and there is no apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        slurmctld slurmd slurm-client munge >"$DIR/apt.log" 2>&1 \
        || cannot "apt-get install slurmctld slurmd slurm-client munge failed (no package registry?); see $DIR/apt.log"
}

preempt_signal_setting() {
    # 22.05 refuses PreemptParameters=send_user_signal ("unrecognized key"); 23.02 moved the switch there.
    local version major minor
    version=$(slurmctld -V | awk '{print $2}')
    major=${version%%.*}
    minor=${version#*.}
    minor=${minor%%.*}
    if [ "$major" -gt 23 ] || { [ "$major" -eq 23 ] && [ "$minor" -ge 2 ]; }; then
        echo "PreemptParameters=send_user_signal"
    else
        echo "SlurmctldParameters=preempt_send_user_signal"
    fi
}

write_conf() {
    local host cpus memory
    host=$(hostname -s)
    cpus=$(nproc)
    memory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))
    mkdir -p "$DIR/state" "$DIR/spool"
    cat >"$CONF" <<EOF
# Written by scripts/slurm_cluster.sh for $host: one node, three partitions, no accounting.
ClusterName=mmx
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${MMX_SLURM_PORT:-6817}
SlurmdPort=$((${MMX_SLURM_PORT:-6817} + 1))
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
SchedulerParameters=sched_interval=1,bf_interval=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
$(preempt_signal_setting)
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=low Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=$GRACE_S
PartitionName=nograce Nodes=$host MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=0
PartitionName=high Nodes=$host MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
}

start_daemon() {  # name, pid file, command...: started in the foreground mode, in the background, its pid kept
    local name=$1 pidfile=$2
    shift 2
    nohup "$@" >"$DIR/$name.out" 2>&1 &
    echo $! >"$pidfile"
}

wait_until() {  # seconds, what, test command...
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 4))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    cannot "$what did not happen within $seconds s; see $DIR/*.out and $DIR/*.log"
}

start() {
    mkdir -p "$DIR"
    if [ -f "$DIR/slurmctld.daemon" ] && kill -0 "$(cat "$DIR/slurmctld.daemon")" 2>/dev/null; then
        echo "slurm_cluster: already running ($CONF)"
        return 0
    fi
    install_packages
    [ "$(id -u)" = 0 ] || cannot "its daemons run as root here (SlurmUser=root), and this is not root"
    write_conf
    rm -rf "$DIR/state"/* "$DIR/spool"/*
    # munged runs as its own user, with its socket where the clients look for it.
    install -d -o munge -g munge -m 0755 /run/munge
    start_daemon munged "$DIR/munged.daemon" runuser -u munge -- /usr/sbin/munged -F
    wait_until 10 "munged answering" sh -c 'munge -n | unmunge'
    export SLURM_CONF=$CONF
    start_daemon slurmctld "$DIR/slurmctld.daemon" /usr/sbin/slurmctld -D -i -f "$CONF"
    wait_until 20 "slurmctld answering" scontrol ping
    start_daemon slurmd "$DIR/slurmd.daemon" /usr/sbin/slurmd -D -f "$CONF"
    wait_until 30 "the node becoming idle" sh -c "sinfo -h -N -o %t | grep -qx idle"
    echo "slurm_cluster: up on $(hostname -s) ($(slurmctld -V)), $(nproc) CPUs; export SLURM_CONF=$CONF"
}

stop() {
    local name pid
    for name in slurmd slurmctld munged; do
        [ -f "$DIR/$name.daemon" ] || continue
        pid=$(cat "$DIR/$name.daemon")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$DIR/$name.daemon"
    done
    # slurmd's job steps (slurmstepd) outlive it when it is killed; none may be left behind
    pkill -f "slurmstepd: \[" 2>/dev/null || true
    echo "slurm_cluster: stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env) echo "export SLURM_CONF=$CONF" ;;
*)
    echo "usage: scripts/slurm_cluster.sh start|stop|env" >&2
    exit 2
    ;;
esac
