#!/usr/bin/env bash
# A one-node Slurm cluster for tests, from Debian's packages (slurmctld slurmd slurm-client munge, 22.05 on
# bookworm), without systemd or cgroups.
#
#   tools/slurm.sh start    install the packages if missing (apt-get, as root or through sudo), start munged +
#                           slurmctld + slurmd, wait (60 s at most) until the node is idle, print
#                           `export SLURM_CONF=...` (also written to $DIR/env). Idempotent: a running cluster is
#                           reused, a half-running one is restarted whole. A new cluster starts with no jobs.
#   tools/slurm.sh stop     cancel every job of this cluster, stop its daemons (pid files), leave no process.
#                           Idempotent.
#   tools/slurm.sh status   sinfo + one line per array task, finished ones too.
#
# DIR is $TICKET_SLURM_DIR (default /tmp/ticket-slurm): config, munge key and socket, state, logs, pid files,
# jobcomp.txt. Ports: $TICKET_SLURM_PORT (default 6817) for slurmctld, +1 for slurmd, on 127.0.0.1.
# Exit codes: 0 ok, 2 bad usage, 3 environment (packages not installable, a daemon that does not come up: one
# line on stderr saying why). Only the `export` line goes to stdout, so `eval "$(tools/slurm.sh start)"` works.
#
# With SLURM_CONF exported, per array index (ARRAY is sbatch --parsable's id):
#   state    squeue --array -t all -j ARRAY -h -o '%K %T %r'   (finished tasks for MinJobAge, 1 h here)
#            scontrol -o show job ARRAY                         (ArrayTaskId=, JobState=, ExitCode=; same window)
#            $DIR/jobcomp.txt                                   (one line per finished task, kept; no sacct here:
#                                                               without slurmdbd it says accounting is disabled)
#   cancel   scancel ARRAY_INDEX                                (SIGTERM, SIGKILL after KillWait=10 s)
#   rerun    sbatch --array=INDEX ... (a new array id), or scontrol requeue ARRAY_INDEX followed by
#            scontrol update JobId=ARRAY_INDEX StartTime=now (a requeued job otherwise waits 2 minutes)
# A batch script's $0 is slurmd's copy in its spool folder: a task finds its files through arguments or
# SLURM_SUBMIT_DIR, not dirname "$0".
set -euo pipefail

dir=${TICKET_SLURM_DIR:-/tmp/ticket-slurm}
port=${TICKET_SLURM_PORT:-6817}
conf=$dir/slurm.conf
node=$(hostname -s)
# The daemons are bound to loopback: the node name is the real host name, its address is 127.0.0.1.
addr=127.0.0.1
# Bounded waits, in seconds.
idle_wait_s=${TICKET_SLURM_WAIT_S:-60}
stop_wait_s=15

fail() { echo "slurm.sh: $*" >&2; exit 3; }
note() { echo "slurm.sh: $*" >&2; }

# Runs as root (CI is root); elsewhere through sudo when there is one.
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else return 1
  fi
}

packages=(slurmctld slurmd slurm-client munge)
binaries=(/usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/sbin/munged)

have_packages() {
  local b
  for b in "${binaries[@]}"; do [ -x "$b" ] || return 1; done
}

install_packages() {
  have_packages && return 0
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    fail "cannot install ${packages[*]}: not root and no sudo"
  fi
  note "installing ${packages[*]} with apt-get"
  # Debian's postinst scripts would start the packaged services; a policy-rc.d that says 101 stops them (the
  # cluster here runs its own daemons from its own config). An existing policy-rc.d is left as it is.
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ] && [ "$(id -u)" = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
  fi
  local log=$dir/apt.log ok=
  # The package lists may be missing or stale on a fresh machine: update first, then install.
  # Bounded: a registry that does not answer fails the start instead of hanging the caller's test; an apt run
  # of someone else is waited for (the dpkg lock), not failed on.
  local apt=(timeout 900 env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
  if as_root "${apt[@]}" update -qq >"$log" 2>&1 &&
    as_root "${apt[@]}" install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${packages[@]}" >>"$log" 2>&1; then
    ok=1
  fi
  [ -n "$made_policy" ] && rm -f "$policy"
  local why
  why=$(grep -E '^(E|W): ' "$log" | tail -n 1) || why=failed
  [ -n "$ok" ] && have_packages || fail "cannot install ${packages[*]} with apt-get: $why (log: $log)"
}

log_of() {
  case $1 in munged) echo "$dir/munge/munged.log" ;; *) echo "$dir/$1.log" ;; esac
}

# The logs are appended to across runs: a daemon's own words are what it wrote after its size was marked.
declare -A log_mark=()
mark_log() { log_mark[$1]=$(stat -c %s "$(log_of "$1")" 2>/dev/null || echo 0); }

# What the daemon wrote to its log since mark_log.
new_log() { tail -c +$((${log_mark[$1]:-0} + 1)) "$(log_of "$1")" 2>/dev/null; }

# Fails with what the daemon last said before dying: slurm's "fatal:" or munged's "Error:", else its last error.
daemon_failed() {
  local why
  why=$(new_log "$1" | grep -E 'fatal:|Error:' | tail -n 1) || why=$(new_log "$1" | grep 'error:' | tail -n 1) ||
    why="see $(log_of "$1")"
  fail "$1 $2: $why"
}

# Kills a process and all its descendants (a job's processes under a slurmstepd).
kill_tree() {
  local child
  # Stopped first, so that it cannot start a new child while its children are being killed.
  kill -STOP "$1" 2>/dev/null || true
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
  kill -KILL "$1" 2>/dev/null || true
}

# A killed process stays a zombie until init reaps it (seconds, here): dead all the same, though kill -0 works.
alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${stat:0:1}" != Z ]
}

# The pid in $dir/NAME.pid when that process is alive and is NAME; fails otherwise.
live_pid() {
  local name=$1 pid
  pid=$(cat "$dir/$name.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && alive "$pid" && echo "$pid"
}

write_config() {
  # munged insists on a key readable by its user only (1 KiB of random bytes is what mungekey makes) and on a
  # socket whose every parent folder everyone can enter: the key gets a private folder, the socket another.
  mkdir -p "$dir/ctld" "$dir/slurmd" "$dir/munge" "$dir/munge-key"
  chmod 755 "$dir" "$dir/munge"
  chmod 700 "$dir/munge-key"
  [ -s "$dir/munge-key/munge.key" ] || head -c 1024 /dev/urandom >"$dir/munge-key/munge.key"
  chmod 400 "$dir/munge-key/munge.key"
  # The node line as slurmd itself sees the hardware (CPUs, sockets, cores, threads, RealMemory): a node
  # configured with more than it has is drained at registration.
  local hw
  hw=$(/usr/sbin/slurmd -C 2>/dev/null | head -n 1 | sed -E 's/^NodeName=[^ ]+ ?//') ||
    fail "slurmd -C failed"
  [ -n "$hw" ] || fail "slurmd -C printed no node line"
  # Job ids go on from the last cluster's (its jobs are in jobcomp.txt), so that an id a caller kept from an
  # earlier run never names a new job.
  local first_job_id
  first_job_id=$(sed -nE 's/^JobId=([0-9]+) .*/\1/p' "$dir/jobcomp.txt" 2>/dev/null | sort -n | tail -n 1) || true
  first_job_id=$((${first_job_id:-0} + 1))
  local tmp=$conf.tmp
  cat >"$tmp" <<EOF
# Written by tools/slurm.sh: a one-node test cluster, no systemd, no cgroups, no accounting daemon.
ClusterName=ticket
FirstJobId=$first_job_id
SlurmctldHost=$node($addr)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
# The daemons run as whoever starts them: root in CI, where jobs run as root (as another user, they can only
# run that user's jobs).
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/slurmd
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
# No cgroups: processes are tracked by parentage, tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd, so sacct has nothing to read; each finished job (array task) is one line in jobcomp.txt.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
# Finished jobs stay visible to squeue/scontrol (squeue -t all) for an hour instead of 5 minutes.
MinJobAge=3600
# scancel: SIGTERM, then SIGKILL after 10 s (default 30).
KillWait=10
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
# One CPU per task by default, memory not a consumable: as many tasks at once as the machine has CPUs.
SelectTypeParameters=CR_CPU
ReturnToService=2
NodeName=$node NodeAddr=$addr $hw State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$tmp" "$conf"
  printf 'export SLURM_CONF=%s\n' "$conf" >"$dir/env"
}

start_daemons() {
  export SLURM_CONF=$conf
  local sock=$dir/munge/munge.socket
  rm -f "$sock" "$sock.lock"
  # The daemons detach themselves and write their pid files. They get no stdin/stdout of the caller (a caller
  # reading our output through a pipe would wait for them forever) and not the lock's fd 9 (they would hold it).
  local name
  for name in munged slurmctld slurmd; do mark_log "$name"; done
  /usr/sbin/munged --key-file="$dir/munge-key/munge.key" --socket="$sock" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
    </dev/null >>"$dir/start.log" 2>&1 9>&- || daemon_failed munged "did not start"
  wait_pid_file munged
  # -c: a new cluster starts from no saved state (jobs, node states such as a drain). Jobs recovered from a
  # cluster stopped uncleanly (slurmd killed) would show as RUNNING with no process behind them until slurmctld
  # gives up on them minutes later.
  /usr/sbin/slurmctld -c -f "$conf" </dev/null >>"$dir/start.log" 2>&1 9>&- ||
    daemon_failed slurmctld "did not start"
  wait_pid_file slurmctld
  /usr/sbin/slurmd -f "$conf" -N "$node" </dev/null >>"$dir/start.log" 2>&1 9>&- ||
    daemon_failed slurmd "did not start"
  wait_pid_file slurmd
}

# The launcher returns before the detached daemon writes its pid file (slurmctld: a second or so later), and
# returns 0 even when the daemon then dies (a port taken): no process left with its command line means that.
wait_pid_file() {
  local deadline=$((SECONDS + 20)) cmdline
  case $1 in munged) cmdline="^/usr/sbin/munged --key-file=$dir/" ;; *) cmdline="^/usr/sbin/$1 .*-f $conf" ;; esac
  until live_pid "$1" >/dev/null; do
    pgrep -f -- "$cmdline" >/dev/null || { sleep 0.2; live_pid "$1" >/dev/null; } || daemon_failed "$1" "died"
    [ $SECONDS -lt $deadline ] || daemon_failed "$1" "wrote no live pid to $dir/$1.pid"
    sleep 0.1
  done
}

wait_idle() {
  local deadline=$((SECONDS + idle_wait_s)) state= name
  while [ $SECONDS -lt $deadline ]; do
    # A daemon that exited (a port taken, a bad config) fails now, not after the whole wait.
    for name in munged slurmctld slurmd; do
      live_pid "$name" >/dev/null || daemon_failed "$name" exited
    done
    state=$(SLURM_CONF=$conf sinfo -h -N -n "$node" -o %T 2>/dev/null | head -n 1) || true
    case $state in
      idle | mixed | allocated | completing) return 0 ;;
      drain*)
        fail "node $node is $state: $(SLURM_CONF=$conf sinfo -h -R -o %E); see $dir/slurmctld.log" ;;
    esac
    sleep 0.5
  done
  fail "node $node not idle after ${idle_wait_s}s (state '${state:-none}'); see $dir/slurmctld.log, slurmd.log"
}

stop_daemons() {
  local name pid pids=() deadline
  # Jobs first, while slurmctld can still cancel them: pending ones would run at the next start, running ones
  # (their slurmstepd) outlive slurmd.
  if live_pid slurmctld >/dev/null; then
    # %F is the array's job id (the job id for a plain job): cancelling it cancels every task of the array.
    local jobs
    jobs=$(SLURM_CONF=$conf squeue -h -o %F 2>/dev/null | sort -u) || true
    # shellcheck disable=SC2086 # one job id per word
    [ -z "$jobs" ] || SLURM_CONF=$conf scancel --quiet $jobs 2>/dev/null || true
    # Only slurmd can end the running ones (SIGTERM, SIGKILL after KillWait); without it they are killed below.
    deadline=$((SECONDS + stop_wait_s))
    while live_pid slurmd >/dev/null && [ $SECONDS -lt $deadline ] &&
      [ -n "$(SLURM_CONF=$conf squeue -h -t running,completing -o %i 2>/dev/null)" ]; do sleep 0.5; done
  fi
  for name in slurmd slurmctld munged; do
    pid=$(live_pid "$name") && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  deadline=$((SECONDS + stop_wait_s))
  for pid in "${pids[@]}"; do
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  done
  # A slurmstepd left over (its job ignored the cancel) carries this cluster's SLURM_CONF in its environment.
  for pid in $(pgrep -x slurmstepd || true); do
    # (one that exits meanwhile has no environ to read: the braces keep that quiet)
    if { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$conf"; then
      note "killing leftover slurmstepd $pid and its job"
      kill_tree "$pid"
    fi
  done
  rm -f "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"
}

# One start or stop at a time (tests run in parallel); the lock is $dir/lock, held through fd 9.
lock() {
  exec 9>"$dir/lock"
  flock -w 180 9 || fail "another tools/slurm.sh holds $dir/lock"
}

cmd_start() {
  mkdir -p "$dir"
  lock
  install_packages
  local running=0 name
  for name in munged slurmctld slurmd; do live_pid "$name" >/dev/null && running=$((running + 1)); done
  if [ $running -ne 3 ]; then
    # Half a cluster (a daemon died) is restarted whole, from a freshly written config.
    [ $running -gt 0 ] && stop_daemons
    write_config
    start_daemons
  fi
  wait_idle
  cat "$dir/env"
}

cmd_status() {
  live_pid slurmctld >/dev/null || fail "no cluster running in $dir (tools/slurm.sh start)"
  export SLURM_CONF=$conf
  sinfo -N -o '%N %P %T %c %m %E'
  # One line per array task, finished ones too (for MinJobAge): %i ARRAY_TASK (1_2), %A its own job id, %K the
  # index (N/A for a plain job), %T the state, %r the reason it waits or failed, %M the time it ran.
  { echo "TASK JOBID INDEX STATE REASON TIME NODE"; squeue --array -t all -h -o '%i %A %K %T %r %M %N'; } |
    awk '{ printf "%-14s %-8s %-6s %-11s %-18s %-10s %s\n", $1, $2, $3, $4, $5, $6, $7 }'
}

case ${1:-} in
  start) cmd_start ;;
  stop)
    [ -d "$dir" ] || exit 0
    lock
    stop_daemons ;;
  status) cmd_status ;;
  *) echo "usage: tools/slurm.sh start|stop|status" >&2; exit 2 ;;
esac
