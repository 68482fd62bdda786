#!/usr/bin/env bash
# launch/slurm.sbatch through a stub srun (mpirun with 2 ranks) and a stub scontrol: SRUN_CPUS_PER_TASK
# is exported for srun, SLURM's SIGUSR1 to the batch script reaches every rank, hcl-train writes a
# checkpoint and exits 3, the script asks scontrol to requeue the job, and the requeued script
# continues the run (--resume auto) to the end with the losses of an uninterrupted run.
source "$(dirname "$0")/common.sh"
LIMIT=120
sbatch_script="$(cd "$(dirname "$0")/../../launch" && pwd)/slurm.sbatch"
export KNN_BANK=100 KNN_TEST=50
tiny_dataset "$work/tiny" 256

mkdir "$work/bin"
cat > "$work/bin/srun" <<STUB
#!/usr/bin/env bash
# Stub srun: records its options and the CPU count it was given, then starts the program on 2 ranks.
if [ "\$1" = --mpi=list ]; then echo "MPI plugin types are..."; echo "\${SRUN_PLUGINS-pmix}"; exit 0; fi
echo "\$*" > "$work/srun.args"; echo "\${SRUN_CPUS_PER_TASK:-unset}" > "$work/srun.cpus"
while [[ "\$1" == --* ]]; do shift; done
[ -z "\${SRUN_DRY:-}" ] || exit 0
exec $MPIRUN -np 2 -x OMP_NUM_THREADS=1 "\$@"
STUB
cat > "$work/bin/scontrol" <<STUB
#!/usr/bin/env bash
# Stub scontrol: answers "show job" with the job's Command (SCONTROL_COMMAND), logs the rest.
if [ "\$1" = show ]; then echo "JobId=\$3 JobName=hcl"; echo "   Command=\${SCONTROL_COMMAND:-}"; exit 0; fi
echo "\$*" >> "$work/scontrol.log"
STUB
chmod +x "$work/bin/srun" "$work/bin/scontrol"

args=(--dataset fashion-mnist --arch small --device cpu --threads 1 --batch-size 32 --log-interval 1 --eval-interval 0
  --knn-bank-size 100 --knn-test-size 50 --data-dir "$work/tiny" --max-steps 20 --checkpoint-interval 0 --out "$work/run")
sbatch() {
  PATH="$work/bin:$PATH" SLURM_JOB_ID=42 SLURM_CPUS_PER_TASK=1 HCL_TRAIN="$HCL_TRAIN" \
    timeout -k 5 "$LIMIT" bash "$sbatch_script" "${args[@]}"
}

sbatch > "$work/first.log" 2>&1 &
job=$!
for i in $(seq $((LIMIT * 5))); do
  [ -f "$work/run/metrics.jsonl" ] && [ "$(grep -c '"type":"train"' "$work/run/metrics.jsonl")" -ge 3 ] && break
  sleep 0.2
done
# SLURM's --signal=B:USR1 goes to the batch shell (timeout's child), not to the tasks.
kill -USR1 "$(pgrep -P "$(pgrep -P "$job" -f timeout)" -f slurm.sbatch)"
status=0
wait "$job" || status=$?
[ "$status" -eq 3 ] || { cat "$work/first.log"; fail "first allocation: exit $status (expected 3)"; }
[ "$(cat "$work/srun.cpus")" = 1 ] || fail "SRUN_CPUS_PER_TASK not exported"
grep -q -- "--resume auto" "$work/srun.args" || fail "srun line without --resume auto"
grep -q "stopped by SIGUSR1 after step 10 of 20" "$work/first.log" || { cat "$work/first.log"; fail "no stop line"; }
[ "$(cat "$work/scontrol.log")" = "requeue 42" ] || fail "job not requeued: $(cat "$work/scontrol.log" 2>/dev/null)"
# The requeued job: the same script and arguments.
sbatch > "$work/second.log" 2>&1 || { cat "$work/second.log"; fail "requeued allocation"; }
grep -q "resumed from $work/run/checkpoint.pt at .* (10 steps done)" "$work/second.log" || fail "not resumed"
[ "$(wc -l < "$work/scontrol.log")" -eq 1 ] || fail "requeued after finishing"
train 2 "${args[@]:18:6}" --out "$work/whole" > "$work/whole.log" 2>&1 || { cat "$work/whole.log"; fail "uninterrupted run"; }
diff <(losses "$work/whole/metrics.jsonl") <(losses "$work/run/metrics.jsonl") || fail "losses differ"
# A spool copy whose job names no checkout, submitted from a folder without one, no HCL_ROOT: one
# clear line, exit 2.
mkdir "$work/spool-lost" && cp "$sbatch_script" "$work/spool-lost/slurm_script"
status=0
(cd "$work" && env -u HCL_TRAIN -u HCL_ROOT PATH="$work/bin:$PATH" SLURM_JOB_ID=45 SLURM_SUBMIT_DIR="$work" \
  bash "$work/spool-lost/slurm_script" > "$work/noroot.log" 2>&1) || status=$?
[ "$status" -eq 2 ] && grep -q "no hcl-train at .*set HCL_ROOT" "$work/noroot.log" || { cat "$work/noroot.log"; fail "no clear error without HCL_ROOT"; }
# Submitted from another folder: slurmd runs a copy of the script from its spool folder, and the
# job's Command names the checkout (a stand-in one here, with a stub program) whose hcl-train runs.
mkdir -p "$work/repo/launch" "$work/repo/build/launch" "$work/spool" "$work/elsewhere"
cp "$sbatch_script" "$work/repo/launch/slurm.sbatch" && cp "$sbatch_script" "$work/spool/slurm_script"
printf '#!/bin/sh\nexit 0\n' > "$work/repo/build/launch/hcl-train" && chmod +x "$work/repo/build/launch/hcl-train"
status=0
(cd "$work/elsewhere" && env -u HCL_TRAIN -u HCL_ROOT PATH="$work/bin:$PATH" SRUN_DRY=1 SLURM_JOB_ID=43 \
  SLURM_SUBMIT_DIR="$work/elsewhere" SCONTROL_COMMAND="$work/repo/launch/slurm.sbatch" \
  timeout -k 5 60 bash "$work/spool/slurm_script" --out x > "$work/elsewhere.log" 2>&1) || status=$?
[ "$status" -eq 0 ] || { cat "$work/elsewhere.log"; fail "submitted from another folder: exit $status"; }
grep -q -- "--cpu-bind=cores $work/repo/build/launch/hcl-train --resume auto --out x" "$work/srun.args" ||
  fail "submitted from another folder: srun ran '$(cat "$work/srun.args")'"
# Tasks started as singletons (srun without an MPI plugin): the script warns before starting them,
# and every task warns that it is alone although SLURM started several.
status=0
(cd "$work/elsewhere" && PATH="$work/bin:$PATH" SRUN_DRY=1 SRUN_PLUGINS=none SLURM_JOB_ID=44 HCL_TRAIN="$HCL_TRAIN" \
  timeout -k 5 60 bash "$sbatch_script" --out x > "$work/plugin.log" 2>&1) || status=$?
[ "$status" -eq 0 ] && grep -q "slurm.sbatch: warning: srun lists no pmix MPI plugin" "$work/plugin.log" ||
  { cat "$work/plugin.log"; fail "no warning about srun's MPI plugins"; }
status=0
SLURM_NTASKS=2 SLURM_STEP_NUM_TASKS=2 OMP_NUM_THREADS=1 timeout -k 5 120 "$HCL_TRAIN" "${args[@]:0:20}" --max-steps 1 \
  --out "$work/single" > "$work/single.log" 2>&1 || status=$?
[ "$status" -eq 0 ] || { cat "$work/single.log"; fail "singleton task: exit $status"; }
grep -q "warning: SLURM started 2 tasks but this one is alone in its MPI job (world size 1)" "$work/single.log" ||
  { cat "$work/single.log"; fail "no singleton warning"; }
echo "6 passed, 0 failed"
