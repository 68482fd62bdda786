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
echo "\$*" > "$work/srun.args"; echo "\${SRUN_CPUS_PER_TASK:-unset}" > "$work/srun.cpus"
while [[ "\$1" == --* ]]; do shift; done
exec $MPIRUN -np 2 -x OMP_NUM_THREADS=1 "\$@"
STUB
printf '#!/usr/bin/env bash\necho "$*" >> "%s/scontrol.log"\n' "$work" > "$work/bin/scontrol"
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
# Submitted from elsewhere without HCL_ROOT: one clear line, exit 2.
status=0
(cd "$work" && env -u HCL_TRAIN -u HCL_ROOT SLURM_SUBMIT_DIR="$work" bash "$sbatch_script" > "$work/noroot.log" 2>&1) || status=$?
[ "$status" -eq 2 ] && grep -q "no hcl-train at .*set HCL_ROOT" "$work/noroot.log" || fail "no clear error without HCL_ROOT"
echo "3 passed, 0 failed"
