#!/usr/bin/env bash
# ctest-labels: cluster
# launch/slurm.sbatch under a real one-node Slurm: Debian's munged, slurmctld and slurmd started here
# by hand, as root, with a minimal slurm.conf, keys, sockets, state and logs in a private folder
# (SLURM_CONF points the clients at it; /etc is not read or touched), the node as `slurmd -C`
# describes it, its cores shared by the test's jobs (OverSubscribe=FORCE). The real script is
# submitted with sbatch command-line overrides only (1 node, 2 tasks of 1 CPU, --gpus-per-node=0),
# srun --mpi=pmix starts the 2 ranks as one MPI job, on a tiny dataset. Checked, each against an
# uninterrupted run of the same script (losses bit-identical, one record per step):
#   usr1     the script's --signal (B:USR1, short --time): checkpoint, exit 3, the script requeues,
#            Slurm holds the requeued job (cred_expire, 120 s; StartTime=now skips it), it resumes;
#   term     SIGTERM to the tasks (scancel --signal=TERM): checkpoint, exit 3, not requeued;
#   bterm    SIGTERM to the batch shell (scancel --batch --signal=TERM): passed on as USR1, checkpoint
#            (no SIGKILL of the tasks), exit 3, not requeued;
#   timeout  the time limit itself (--time=1, no early signal; slurmstepd sends the tasks SIGTERM,
#            SIGCONT, SIGTERM within milliseconds): checkpoint, exit 3, the job ends TIMEOUT (not
#            requeued);
#   cancel   a plain scancel: checkpoint, the job ends CANCELLED and does not come back;
#   requeue  scontrol requeue: checkpoint, Slurm requeues, the run resumes;
# every stopped run is then continued (requeue released, or the same sbatch again) to the end.
# Also what the README says of the rest: the script as shipped (--gpus-per-node=8) is refused by a
# cluster without GPUs; `scancel --full --signal=TERM` also signals srun, which kills its tasks
# (SIGKILL, no checkpoint); srun without PMIx (--mpi=none) does not start singletons with
# OpenMPI: every task aborts in MPI_Init.
# The usr1 and timeout jobs wait up to 90 s for Slurm's signal (slurmctld checks time limits every
# 30 s); their tasks are stopped (SIGSTOP) meanwhile, as a suspended or slow job would be, so the
# wait costs no CPU and the stop lands at step 10: Slurm's own SIGCONT wakes them at the time
# limit, the test's after the script has received its USR1.
# Needs root and the Slurm and munge packages (scripts/setup installs them); skipped (77) otherwise.
source "$(dirname "$0")/common.sh"
LIMIT=150  # seconds, the deadline of every wait
STEPS=40

[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (starts munged, slurmctld and slurmd)"; exit 77; }
for program in munged slurmctld slurmd sbatch srun scontrol scancel squeue sinfo; do
  command -v "$program" > /dev/null ||
    { echo "SKIP: no $program (scripts/setup installs slurm-wlm, slurmctld, slurmd and munge)"; exit 77; }
done
sbatch_script="$(cd "$(dirname "$0")/../../launch" && pwd)/slurm.sbatch"
s="$work/slurm"  # the cluster's folder: configuration, key, socket, state, spool, logs
mkdir -p "$s/state" "$s/spool"
chmod 755 "$work" "$s"  # munged wants its socket's folders searchable by all

# The daemons (and anything left of their jobs) are stopped by pid when the test ends, whatever
# the outcome; their logs are printed when it fails.
pids=()
cleanup() {
  local status=$? pid i
  trap - EXIT
  if [ "$status" -ne 0 ] && [ -d "$s" ]; then
    for f in slurmctld.log slurmd.log munged.log; do
      [ -f "$s/$f" ] && { echo "---- last lines of $f"; tail -n 40 "$s/$f"; }
    done
  fi
  if [ -n "${SLURM_CONF:-}" ]; then
    for i in $(timeout 10 squeue -h -o %i 2>/dev/null); do timeout 10 scancel --signal=KILL --full "$i" 2>/dev/null || true; done
    for i in $(seq 50); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # slurmstepd and job processes outlive slurmd: those of this cluster carry its SLURM_CONF.
  for pid in $(grep -lsx -z "SLURM_CONF=$s/slurm.conf" /proc/[0-9]*/environ | cut -d/ -f3); do
    [ "$pid" != $$ ] && [ "$pid" != "$BASHPID" ] && kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM INT  # CTest's timeout: clean up too

# ---- The cluster
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
node="$(hostname -s)"
# The node as slurmd sees it (not nproc: it follows OMP_NUM_THREADS, 1 under CTest, and a node of
# 1 CPU leaves a 2-task job pending forever with Reason=PartitionConfig).
hardware="$(slurmd -C | head -n 1 | grep -o -E '(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=[0-9]+' | tr '\n' ' ')"
[[ "$hardware" == *CPUs=* ]] || fail "slurmd -C: no CPUs in '$(slurmd -C 2>&1 | head -n 1)'"
# KillWait: the tasks' grace after SIGTERM (scancel, requeue, time limit); Slurm's default. The
# requeue hold (AuthInfo cred_expire) keeps its default too (120 s): the test checks it, then
# skips it. MinJobAge: job records stay for the whole test.
cat > "$s/slurm.conf" <<CONF
ClusterName=hcltest
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$s/munge.sock
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
StateSaveLocation=$s/state
SlurmdSpoolDir=$s/spool
SlurmctldPidFile=$s/slurmctld.pid
SlurmdPidFile=$s/slurmd.pid
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmctldLogFile=$s/slurmctld.log
SlurmdLogFile=$s/slurmd.log
SlurmctldDebug=verbose
SlurmdDebug=debug
MailProg=/bin/true
KillWait=30
MinJobAge=600
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 $hardware State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
export SLURM_CONF="$s/slurm.conf"
head -c 1024 /dev/urandom > "$s/munge.key" && chmod 600 "$s/munge.key"
munged --foreground --key-file="$s/munge.key" --socket="$s/munge.sock" --pid-file="$s/munged.pid" \
  --seed-file="$s/munge.seed" > "$s/munged.log" 2>&1 &
pids+=($!)
for i in $(seq 50); do [ -S "$s/munge.sock" ] && break; sleep 0.1; done
[ -S "$s/munge.sock" ] || fail "munged did not start"
slurmctld -D -i > "$s/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D > "$s/slurmd.out" 2>&1 &
pids+=($!)
for i in $(seq 150); do [ "$(timeout 5 sinfo -h -o %t 2>/dev/null)" = idle ] && break; sleep 0.2; done
[ "$(timeout 5 sinfo -h -o %t 2>/dev/null)" = idle ] || fail "the node is not idle after 30 s: $(sinfo -N -l 2>&1)"
plugins="$(srun --mpi=list 2>&1)"
[[ "$plugins" == *pmix* ]] || fail "srun has no pmix MPI plugin, so it cannot start OpenMPI's ranks as one job: $plugins"
echo "cluster up: node $node ($hardware), srun MPI plugins: $(echo $plugins | sed 's/MPI plugin types are... //')"

# ---- Jobs
tiny_dataset "$work/tiny" 256
args=(--dataset fashion-mnist --arch small --device cpu --threads 1 --batch-size 32 --log-interval 1
  --eval-interval 0 --eval-min-seconds 0 --checkpoint-min-seconds 0 --knn-bank-size 100 --knn-test-size 50
  --lr-schedule constant --data-dir "$work/tiny" --max-steps "$STEPS" --checkpoint-interval 0)
# submit NAME [SBATCH OPTIONS...]: the real script on 1 node, 2 tasks of 1 CPU, no GPUs; prints the
# job id. Its output goes to NAME-JOBID.out, its run to the folder NAME.
submit() {
  local name="$1"; shift
  (cd "$work" && HCL_TRAIN="$HCL_TRAIN" timeout 30 sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
    --gpus-per-node=0 --output="$work/$name-%j.out" "$@" "$sbatch_script" "${args[@]}" --out "$work/$name")
}
field() { timeout 10 scontrol show job "$1" 2>/dev/null | grep -o -E "(^| )$2=[^ ]*" | head -n 1 | cut -d= -f2- || true; }
out_of() { cat "$work/$1-$2.out" 2>/dev/null || true; }
# die NAME JOB MESSAGE: fail, with the job's record and output.
die() {
  echo "---- scontrol show job $2"; timeout 10 scontrol show job "$2" 2>&1 || true
  echo "---- $1-$2.out"; out_of "$1" "$2" | cut -c1-300
  fail "$1 (job $2): $3"
}
# until_true NAME JOB WHAT COMMAND...: waits up to LIMIT s for COMMAND to succeed.
until_true() {
  local name="$1" job="$2" what="$3" i; shift 3
  for i in $(seq $((LIMIT * 5))); do "$@" && return 0; sleep 0.2; done
  die "$name" "$job" "no $what after $LIMIT s"
}
train_steps() { [ -f "$work/$1/metrics.jsonl" ] && [ "$(grep -c '"type":"train"' "$work/$1/metrics.jsonl")" -ge "$2" ]; }
state_is() { local state; state="$(field "$1" JobState)"; shift; [[ " $* " == *" $state "* ]]; }
terminal="COMPLETED FAILED CANCELLED TIMEOUT NODE_FAIL PREEMPTED OUT_OF_MEMORY BOOT_FAIL DEADLINE"
ended() { state_is "$1" $terminal; }
requeued() { local r; r="$(field "$1" Restarts)"; [ "${r:-0}" -ge 1 ] && state_is "$1" PENDING; }
in_output() { out_of "$1" "$2" | grep -q -E -- "$3"; }
# signal_tasks NAME JOB SIGNAL: sends SIGNAL to the job's tasks (step 0; scontrol listpids).
signal_tasks() {
  local pids; pids="$(timeout 10 scontrol listpids "$2.0" 2>/dev/null | awk '$4 ~ /^[0-9]+$/ { print $1 }')"
  [ "$(echo $pids | wc -w)" -eq 2 ] || die "$1" "$2" "scontrol listpids $2.0: expected 2 tasks, got '$pids'"
  kill "-$3" $pids
}
# stopped NAME JOB SIGNALS: the run stopped on one of SIGNALS (a regex) with a checkpoint, exit 3.
stopped() {
  in_output "$1" "$2" "info: stopped by ($3) after step [0-9]+ of $STEPS; checkpoint written" ||
    die "$1" "$2" "no stop on $3 with a checkpoint"
  in_output "$1" "$2" "srun: error: .*: tasks? [0-9-]+: Exited with exit code 3" || die "$1" "$2" "the tasks did not exit 3"
  ! in_output "$1" "$2" "Killed|exit code 137|CANCELLED .* DUE TO SIGNAL" || die "$1" "$2" "tasks killed"
  [ -s "$work/$1/checkpoint.pt" ] || die "$1" "$2" "no checkpoint.pt"
}
# release JOB: a requeued job waits for cred_expire (120 s) before it may start; start it now. Not
# in the second of its requeue: slurmd refuses a launch whose credential is not newer than the
# revocation of the previous one ("Job credential revoked") and the job ends FAILED.
release() {
  requeued "$1" || return 0
  sleep 2
  timeout 10 scontrol update JobId="$1" StartTime=now > /dev/null
}
# run_to_end NAME JOB: waits for the job to complete (releasing it whenever it is requeued again).
run_to_end() {
  local name="$1" job="$2" i state
  for i in $(seq $((LIMIT * 5))); do
    state="$(field "$job" JobState)"
    [ "$state" = COMPLETED ] && break
    [[ " $terminal " != *" $state "* ]] || die "$name" "$job" "ended $state, expected COMPLETED"
    [ "$(field "$job" Reason)" != BeginTime ] || release "$job" || true
    sleep 0.2
  done
  state_is "$job" COMPLETED || die "$name" "$job" "not COMPLETED after $LIMIT s"
  in_output "$name" "$job" "step $STEPS/$STEPS " && in_output "$name" "$job" "done: [0-9]+ steps" ||
    die "$name" "$job" "no 'done' line"
}
# resumed_equal NAME JOB: the run resumed from its checkpoint and has the uninterrupted run's losses.
resumed_equal() {
  in_output "$1" "$2" "resumed from $work/$1/checkpoint.pt at .* \([0-9]+ steps done\)" || die "$1" "$2" "not resumed"
  python3 -c 'import json,sys
steps = [r["step"] for r in map(json.loads, open(sys.argv[1])) if r["type"] == "train"]
assert steps == list(range(1, int(sys.argv[2]) + 1)), steps' "$work/$1/metrics.jsonl" "$STEPS" ||
    die "$1" "$2" "not one train record per step"
  wait_for_baseline
  diff <(losses "$work/whole/metrics.jsonl") <(losses "$work/$1/metrics.jsonl") > "$work/$1.diff" ||
    { cat "$work/$1.diff"; die "$1" "$2" "losses differ from the uninterrupted run's"; }
}
wait_for_baseline() {
  local i
  for i in $(seq $((LIMIT * 5))); do
    [ -f "$work/whole.ok" ] && return 0
    grep -q "^FAIL" "$work/check_whole.log" 2>/dev/null && break
    sleep 0.2
  done
  fail "no uninterrupted run to compare with"
}
stop_line() { out_of "$1" "$2" | grep -o -E "stopped by SIG[A-Z0-9]+ after step [0-9]+" | head -n 1; }
# continue_run NAME: the same sbatch again (a user's resubmission): --resume auto continues the run.
continue_run() {
  local job
  job="$(submit "$1")" || fail "$1: resubmission refused"
  run_to_end "$1" "$job"
  resumed_equal "$1" "$job"
}

# A CPU-only cluster refuses the script's --gpus-per-node=8; --gpus-per-node=0 (as submit passes) is
# what it takes.
status=0
(cd "$work" && HCL_TRAIN="$HCL_TRAIN" timeout 30 sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
  --output=/dev/null "$sbatch_script" --out "$work/refused" > "$work/gres.log" 2>&1) || status=$?
[ "$status" -ne 0 ] && grep -q "Invalid generic resource" "$work/gres.log" ||
  { cat "$work/gres.log"; fail "without --gpus-per-node=0: expected 'Invalid generic resource', got exit $status"; }
echo "ok gres: the script as shipped is refused here ('Invalid generic resource'); --gpus-per-node=0 runs"

check_whole() {  # the uninterrupted run
  local job; job="$(submit whole)"
  until_true whole "$job" "end" ended "$job"
  state_is "$job" COMPLETED && in_output whole "$job" "done: $STEPS steps" || die whole "$job" "did not complete"
  in_output whole "$job" "distributed: backend mpi, 2 ranks on 1 node\(s\)" || die whole "$job" "not one MPI job of 2 ranks"
  ! in_output whole "$job" "alone in its MPI job|singleton" || die whole "$job" "tasks started as singletons"
  touch "$work/whole.ok"
  echo "ok whole: srun --mpi=pmix started 2 ranks as one MPI job; $STEPS steps, COMPLETED"
}

check_usr1() {  # the script's own --signal: USR1 to the batch shell shortly before the time limit
  local job hold end early
  job="$(submit usr1 --time=1 --signal=B:USR1@15)"
  until_true usr1 "$job" "3 steps" train_steps usr1 3
  signal_tasks usr1 "$job" STOP
  end="$(date -d "$(field "$job" EndTime)" +%s)"
  until_true usr1 "$job" "SIGUSR1 from --signal" in_output usr1 "$job" "slurm.sbatch: SIGUSR1 received"
  # slurmctld sends it at its first 30-s check with at most 15 + 30 s left.
  early=$((end - $(date +%s)))
  [ "$early" -ge 13 ] && [ "$early" -le 46 ] || die usr1 "$job" "SIGUSR1 came $early s before the time limit (expected 15 to 45)"
  signal_tasks usr1 "$job" CONT
  until_true usr1 "$job" "requeue" requeued "$job"
  stopped usr1 "$job" SIGUSR1
  in_output usr1 "$job" "requeueing job $job" || die usr1 "$job" "the script did not requeue"
  hold=$(( $(date -d "$(field "$job" EligibleTime)" +%s) - $(date +%s) ))
  [ "$hold" -ge 60 ] || die usr1 "$job" "requeued job eligible in $hold s (expected Slurm's hold, about 120 s)"
  release "$job" || die usr1 "$job" "scontrol update StartTime=now failed"
  run_to_end usr1 "$job"
  resumed_equal usr1 "$job"
  echo "ok usr1: --signal=B:USR1@15 reached the script $early s before the limit, $(stop_line usr1 "$job"), exit 3, requeued by the script" \
    "(held ${hold} s, released with StartTime=now), resumed to the end ($(field "$job" Restarts) requeues in all:" \
    "--time=1 signals each attempt): same losses"
}

check_term() {  # SIGTERM to the tasks only
  local job; job="$(submit term)"
  until_true term "$job" "3 steps" train_steps term 3
  timeout 30 scancel --signal=TERM "$job"
  until_true term "$job" "end" ended "$job"
  stopped term "$job" SIGTERM
  state_is "$job" FAILED && [ "$(field "$job" ExitCode)" = 3:0 ] && [ "$(field "$job" Restarts)" = 0 ] ||
    die term "$job" "expected FAILED with exit code 3, not requeued"
  local line; line="$(stop_line term "$job")"
  continue_run term
  echo "ok term: scancel --signal=TERM: $line, exit 3, FAILED 3:0, not requeued; resubmitted: same losses"
}

check_bterm() {  # SIGTERM to the batch shell only
  local job; job="$(submit bterm)"
  until_true bterm "$job" "3 steps" train_steps bterm 3
  timeout 30 scancel --batch --signal=TERM "$job"
  until_true bterm "$job" "end" ended "$job"
  in_output bterm "$job" "slurm.sbatch: SIGTERM received" || die bterm "$job" "the script did not see SIGTERM"
  stopped bterm "$job" SIGUSR1
  state_is "$job" FAILED || die bterm "$job" "expected FAILED (exit 3)"
  [ "$(field "$job" ExitCode)" = 3:0 ] && [ "$(field "$job" Restarts)" = 0 ] ||
    die bterm "$job" "expected exit code 3, not requeued"
  local line; line="$(stop_line bterm "$job")"
  continue_run bterm
  echo "ok bterm: scancel --batch --signal=TERM: passed on as USR1, $line, exit 3, not requeued; resubmitted: same losses"
}

check_timeout() {  # the time limit itself, no early signal
  local job end late; job="$(submit timeout --time=1 --signal=B:USR1@0)"
  until_true timeout "$job" "3 steps" train_steps timeout 3
  signal_tasks timeout "$job" STOP
  end="$(date -d "$(field "$job" EndTime)" +%s)"
  until_true timeout "$job" "end at the time limit" ended "$job"
  late=$(($(date +%s) - end))
  state_is "$job" TIMEOUT || die timeout "$job" "expected TIMEOUT"
  in_output timeout "$job" "CANCELLED AT .* DUE TO TIME LIMIT" || die timeout "$job" "no time-limit line"
  stopped timeout "$job" "SIGTERM|SIGUSR1"
  [ "$(field "$job" Restarts)" = 0 ] || die timeout "$job" "requeued"
  local line; line="$(stop_line timeout "$job")"
  continue_run timeout
  echo "ok timeout: --time=1 reached (acted on $late s after the limit), no early signal: $line, exit 3, TIMEOUT," \
    "not requeued; resubmitted: same losses"
}

check_cancel() {  # a plain scancel
  local job; job="$(submit cancel)"
  until_true cancel "$job" "3 steps" train_steps cancel 3
  timeout 30 scancel "$job"
  until_true cancel "$job" "end" ended "$job"
  until_true cancel "$job" "script's last line" in_output cancel "$job" "slurm.sbatch: hcl-train stopped with a checkpoint"
  stopped cancel "$job" "SIGTERM|SIGUSR1"
  sleep 5
  state_is "$job" CANCELLED && [ "$(field "$job" Restarts)" = 0 ] || die cancel "$job" "came back after scancel"
  ! in_output cancel "$job" "requeueing" || die cancel "$job" "the script requeued a cancelled job"
  local line; line="$(stop_line cancel "$job")"
  continue_run cancel
  echo "ok cancel: scancel: $line, exit 3, CANCELLED and not back 5 s later; resubmitted: same losses"
}

check_requeue() {  # scontrol requeue
  local job hold; job="$(submit requeue)"
  until_true requeue "$job" "3 steps" train_steps requeue 3
  timeout 30 scontrol requeue "$job"
  until_true requeue "$job" "requeue" requeued "$job"
  stopped requeue "$job" "SIGTERM|SIGUSR1"
  hold=$(( $(date -d "$(field "$job" EligibleTime)" +%s) - $(date +%s) ))
  [ "$hold" -ge 60 ] || die requeue "$job" "requeued job eligible in $hold s (expected Slurm's hold, about 120 s)"
  local line; line="$(stop_line requeue "$job")"
  release "$job" || die requeue "$job" "scontrol update StartTime=now failed"
  run_to_end requeue "$job"
  resumed_equal requeue "$job"
  echo "ok requeue: scontrol requeue: $line, exit 3, requeued by Slurm (held $hold s, released), resumed: same losses"
}

check_full() {  # SIGTERM to everything, srun included
  local job; job="$(submit full)"
  until_true full "$job" "3 steps" train_steps full 3
  timeout 30 scancel --full --signal=TERM "$job"
  until_true full "$job" "end" ended "$job"
  in_output full "$job" "srun: forcing job termination" && in_output full "$job" "Killed" &&
    ! in_output full "$job" "stopped by SIG" ||
    die full "$job" "expected srun to kill its tasks on its own SIGTERM (if Slurm no longer does, update the README)"
  echo "ok full: scancel --full --signal=TERM: srun got SIGTERM and killed its tasks (SIGKILL), no checkpoint," \
    "$(field "$job" JobState) $(field "$job" ExitCode)"
}

check_nompi() {  # srun without an MPI plugin, then with pmi2
  local job line command
  command="$(printf '%q ' "$HCL_TRAIN" "${args[@]}")"
  job="$(cd "$work" && timeout 30 sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
    --output="$work/nompi-%j.out" --wrap "srun --mpi=none $command --out $work/nompi-none; echo srun-none-exit=\$?
      srun --mpi=pmi2 $command --out $work/nompi-pmi2; echo srun-pmi2-exit=\$?")"
  until_true nompi "$job" "end" ended "$job"
  in_output nompi "$job" "srun-none-exit=[1-9]" && in_output nompi "$job" "OMPI was not built with SLURM's PMI support" &&
    ! in_output nompi "$job" "world size 1" || die nompi "$job" "srun --mpi=none: expected every task to abort in MPI_Init"
  line="$(out_of nompi "$job" | grep -o "srun-pmi2-exit=[0-9]*")"
  echo "ok nompi: srun --mpi=none: every task aborts in MPI_Init ('OMPI was not built with SLURM's PMI support')," \
    "no singletons; srun --mpi=pmi2: ${line#srun-}"
}

checks=(whole usr1 term bterm timeout cancel requeue full nompi)
declare -A running
for c in "${checks[@]}"; do
  ( "check_$c" ) > "$work/check_$c.log" 2>&1 &
  running[$c]=$!
done
failed=0
for c in "${checks[@]}"; do
  status=0
  wait "${running[$c]}" || status=$?
  cat "$work/check_$c.log"
  [ "$status" -eq 0 ] || { echo "FAIL: check $c (exit $status)"; failed=$((failed + 1)); }
done
[ "$failed" -eq 0 ] || fail "$failed of ${#checks[@]} checks failed"
echo "$(( ${#checks[@]} + 1 )) passed, 0 failed"  # the checks and gres
