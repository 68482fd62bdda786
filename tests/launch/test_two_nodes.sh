#!/usr/bin/env bash
# ctest-labels: cluster
# Two nodes under a real mpirun, on this one machine: two network namespaces joined by a veth pair
# on a private subnet (10.213.0.0/24, which exists only inside them), each node with its own
# hostname (UTS namespace), its own /dev/shm (a tmpfs in its own mount namespace) and a private
# /etc/hosts naming both nodes. Each node's namespaces are held by a sleeping process; mpirun runs
# in node A's, and starts its daemon on node B through a plm_rsh_agent script that enters node B's
# (nsenter) with a fresh environment, as ssh would: no sshd. Checks:
#  - 2x1 and 2x2 ranks (--host nodeA:1,nodeB:1 and nodeA:2,nodeB:2): the train losses equal those
#    of the same global run on one node (2 and 4 ranks, plain mpirun), hcl sees 2 nodes;
#  - node-shared memory is per node: in the 2x2 run each node's ranks map one segment set, made by
#    that node's local rank 0 in that node's own /dev/shm (2 nodes, 2 leaders);
#  - launch/mpirun_example.sh with HOSTS=nodeA:2,nodeB:2 (mpirun options before `--`): the same
#    losses;
#  - an extra interface with the same address on both nodes (a bridge "dock0", 172.31.255.1/24:
#    the docker0/virbr0 case): without a flag the job ends within a bounded time with hcl's
#    start-up line naming the cause (or works), never a silent hang; with the flags that README and
#    launch/mpirun_example.sh document (btl_tcp_if_include / oob_tcp_if_include eth0) it works.
# Everything (namespaces, their processes, the tmpfs mounts) goes at exit; the host's own network,
# hostname and /etc/hosts are not touched. Needs root, ip, unshare and nsenter; exit 77 otherwise.
source "$(dirname "$0")/common.sh"
script="$(cd "$(dirname "$0")/../../launch" && pwd)/mpirun_example.sh"
LIMIT=120  # per run: a hang fails the test instead of blocking it
TOTAL=500  # and all runs end by then, so that the clean-up runs before CTest's timeout (600 s) kills
export KNN_BANK=100 KNN_TEST=50
# Start-up (MPI_Init, topology query) ends with hcl's error after this many seconds, on every rank
# (forwarded with -x): a run that cannot connect fails fast instead of waiting for LIMIT.
export HCL_START_TIMEOUT=60

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (network, UTS and mount namespaces); CI runs it as root"
for tool in ip unshare nsenter timeout; do
  command -v "$tool" > /dev/null || skip "no '$tool' (Debian: iproute2, util-linux, coreutils)"
done

# ---- the two nodes ----
tag="hcl2n-$$-$RANDOM"  # unique per run: concurrent jobs do not clash
netns=("$tag-a" "$tag-b")
names=(nodeA nodeB)
address=(10.213.0.1 10.213.0.2)
holders=()  # pid of the process holding each node's UTS and mount namespaces
sampler=""  # pid of the node-shared memory sampler while it runs

cleanup() {
  local ns pids i
  trap - EXIT INT TERM
  [ -z "$sampler" ] || kill "$sampler" 2> /dev/null || true
  # Every process left in the nodes (holders, mpirun, orted, ranks) is this test's.
  for i in 1 2 3 4 5 6 7 8 9 10 11; do
    pids=""
    for ns in "${netns[@]}"; do pids+=" $(ip netns pids "$ns" 2> /dev/null || true)"; done
    [ -n "${pids// /}" ] || break
    # shellcheck disable=SC2086  # a list of pids
    if [ "$i" -eq 1 ]; then kill -TERM $pids 2> /dev/null || true
    elif [ "$i" -ge 10 ]; then kill -KILL $pids 2> /dev/null || true
    fi
    sleep 0.3
  done
  for ns in "${netns[@]}"; do ip netns del "$ns" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# try CMD...: a step of the set-up; if the machine refuses it, the test cannot run here.
try() { "$@" 2> "$work/setup.err" || skip "cannot build the two nodes: '$*' failed: $(head -c 300 "$work/setup.err")"; }
try ip netns add "${netns[0]}"
try ip netns add "${netns[1]}"
try ip link add eth0 netns "${netns[0]}" type veth peer name eth0 netns "${netns[1]}"
printf '127.0.0.1 localhost\n::1 localhost\n%s %s\n%s %s\n' "${address[0]}" nodeA "${address[1]}" nodeB > "$work/hosts"
for i in 0 1; do
  try ip -n "${netns[$i]}" link set lo up
  try ip -n "${netns[$i]}" addr add "${address[$i]}/24" dev eth0
  try ip -n "${netns[$i]}" link set eth0 up
  # The holder: the node's hostname, /dev/shm and /etc/hosts, then sleep (bounded, should the
  # clean-up not run). `ip netns exec` and unshare exec, so $! is the sleeping process.
  # shellcheck disable=SC2016  # $1, $2, $3 are the holder script's
  ip netns exec "${netns[$i]}" unshare --uts --mount --propagation private -- sh -c '
    set -e; hostname "$1"; mount -t tmpfs -o size=256m,mode=1777 "$1-shm" /dev/shm
    mount --bind "$2" /etc/hosts; touch "$3"; exec sleep 900' sh "${names[$i]}" "$work/hosts" "$work/ready.$i" \
    > "$work/holder.$i.log" 2>&1 &
  holders+=($!)
done
for i in 0 1; do
  for _ in $(seq 100); do [ -e "$work/ready.$i" ] || ! kill -0 "${holders[$i]}" 2> /dev/null || sleep 0.1; done
  [ -e "$work/ready.$i" ] || skip "cannot give ${names[$i]} its own hostname and /dev/shm: $(cat "$work/holder.$i.log")"
done
# The nodes are distinct and reach each other by name.
for i in 0 1; do
  [ "$(nsenter --target "${holders[$i]}" --uts hostname)" = "${names[$i]}" ] || fail "${names[$i]}: hostname"
  [ "$(stat -c %d "/proc/${holders[$i]}/root/dev/shm")" != "$(stat -c %d /dev/shm)" ] || fail "${names[$i]}: /dev/shm is the host's"
done
[ "$(readlink "/proc/${holders[0]}/ns/mnt")" != "$(readlink "/proc/${holders[1]}/ns/mnt")" ] || fail "one mount namespace"
nsenter --target "${holders[0]}" --net --uts --mount -- getent hosts nodeB | grep -q "^${address[1]} " ||
  fail "nodeA does not resolve nodeB to ${address[1]}"

# The rsh agent: "HOST COMMAND..." runs COMMAND in HOST's namespaces, with only PATH and HOME set.
cat > "$work/rsh" << EOF
#!/bin/sh
echo "\$*" >> "$work/rsh.log"
case "\$1" in
  nodeA) pid=${holders[0]} ;;
  nodeB) pid=${holders[1]} ;;
  *) echo "rsh: no node '\$1'" >&2; exit 255 ;;
esac
shift
exec nsenter --target "\$pid" --net --uts --mount -- env -i PATH="$PATH" HOME="\${HOME:-/}" /bin/sh -c "\$*"
EOF
chmod +x "$work/rsh"
in_node_a=(nsenter --target "${holders[0]}" --net --uts --mount --)
# Options for mpirun on these nodes: the agent, and ranks that yield when idle (4 ranks busy-polling
# TCP on 2 cores otherwise take 2-4 times as long; the arithmetic is the same).
node_flags=(--mca plm_rsh_agent "$work/rsh" --mca mpi_yield_when_idle 1)

# ---- runs ----
tiny_dataset "$work/tiny" 256
args=(--data-dir "$work/tiny" --max-steps 12)
# The options train() gives hcl-train (common.sh), for launch/mpirun_example.sh; if they drift, the
# losses differ and the test says so.
train_options=(--dataset fashion-mnist --arch small --device cpu --threads 1 --batch-size 32 --log-interval 1
  --eval-interval 0 --eval-min-seconds 0 --checkpoint-min-seconds 0 --knn-bank-size "$KNN_BANK"
  --knn-test-size "$KNN_TEST" --lr-schedule constant)
base_mpirun="$MPIRUN"
passed=0

# limit: the time a run may take, LIMIT or less when the test's TOTAL is nearly spent.
limit() {
  local left=$((TOTAL - SECONDS))
  [ "$left" -ge 10 ] || fail "out of time ($TOTAL s) before the next run"
  run_limit=$((left < LIMIT ? left : LIMIT))
}

# in_background CMD...: CMD, waited for so that a TERM or INT reaches the trap at once.
in_background() { "$@" & wait $!; }

# one_node_train NP OUT: hcl-train with NP ranks on this machine (plain mpirun).
one_node_train() {
  limit
  MPIRUN="timeout -k 5 $run_limit $base_mpirun" in_background train "$1" "${args[@]}" --out "$2" > "$2.log" 2>&1
}

# nodes_train HOSTS NP OUT [MPIRUN OPTIONS...]: hcl-train under mpirun started in node A.
nodes_train() {
  local hosts="$1" np="$2" out="$3"; shift 3
  limit
  MPIRUN="timeout -k 5 $run_limit ${in_node_a[*]} $base_mpirun --host $hosts ${node_flags[*]} -x HCL_START_TIMEOUT $*" \
    in_background train "$np" "${args[@]}" --out "$out" > "$out.log" 2>&1
}

# example_train HOSTS NP OUT [MPIRUN OPTIONS...]: the same through launch/mpirun_example.sh in node A.
example_train() {
  local hosts="$1" np="$2" out="$3"; shift 3
  limit
  in_background timeout -k 5 "$run_limit" "${in_node_a[@]}" env HOSTS="$hosts" HCL_TRAIN="$HCL_TRAIN" OMP_NUM_THREADS=1 \
    bash "$script" "$np" "${node_flags[@]}" "$@" -- "${train_options[@]}" "${args[@]}" --out "$out" > "$out.log" 2>&1
}

# same_losses REF RUN: RUN's 12 train losses are exactly REF's.
same_losses() {
  losses "$1/metrics.jsonl" > "$work/ref.txt" || fail "$1: no metrics"
  losses "$2/metrics.jsonl" > "$work/run.txt" || { cat "$2.log"; fail "$2: no metrics"; }
  [ "$(wc -l < "$work/ref.txt")" -eq 12 ] || fail "$1: not 12 train records"
  diff -q "$work/ref.txt" "$work/run.txt" > /dev/null ||
    { paste "$work/ref.txt" "$work/run.txt"; fail "the losses of $2 differ from one node's ($1)"; }
}

# layout LOG WORLD PER_NODE HOST...: hcl saw WORLD ranks on 2 nodes, rank r on the r-th HOST.
layout() {
  local log="$1" world="$2" per_node="$3" r=0 host; shift 3
  grep -qF "distributed: backend mpi, $world ranks on 2 node(s), $per_node rank(s) on this node" "$log" ||
    { cat "$log"; fail "$log: hcl does not see $world ranks on 2 nodes"; }
  for host in "$@"; do
    grep -qF "  rank $r: $host cpu" "$log" || { cat "$log"; fail "$log: rank $r is not on $host"; }
    r=$((r + 1))
  done
}

# no_strays: after a run, nothing but the holders is left in the nodes (no orted, no rank).
no_strays() {
  local left=""
  for _ in $(seq 50); do
    left="$( (ip netns pids "${netns[0]}"; ip netns pids "${netns[1]}") | grep -vxF -e "${holders[0]}" -e "${holders[1]}" || true)"
    [ -n "$left" ] || return 0
    sleep 0.2
  done
  ps -o pid,args -p "$(echo "$left" | tr '\n' , | sed 's/,$//')" || true
  fail "processes left in the nodes after $1"
}

# The same global runs on one node (plain mpirun).
one_node_train 2 "$work/one-node-2" || { cat "$work/one-node-2.log"; fail "one node, 2 ranks"; }
one_node_train 4 "$work/one-node-4" || { cat "$work/one-node-4.log"; fail "one node, 4 ranks"; }

# 2x1: one rank per node.
nodes_train nodeA:1,nodeB:1 2 "$work/2x1" || { cat "$work/2x1.log"; fail "2 nodes x 1 rank"; }
no_strays "2x1"
layout "$work/2x1.log" 2 1 nodeA nodeB
same_losses "$work/one-node-2" "$work/2x1"
grep -q "^nodeB .*orted" "$work/rsh.log" || fail "mpirun did not start nodeB's daemon through the agent"
! grep -q "^nodeA " "$work/rsh.log" || fail "mpirun used the agent for its own node"
echo "2x1: 2 nodes seen, losses equal to one node's"
passed=$((passed + 1))

# 2x2: two ranks per node, with every rank's node-shared mappings sampled while it runs.
cat > "$work/shm.py" << 'PY'
"""Samples, until STOP exists (or its folder is gone), the node-shared memory (memfd:hcl-*, or
/dev/shm/hcl-*) mapped by every hcl-train rank in the two nodes, then checks that each node has its
own, made by its local rank 0 as a memfd (no name in any /dev/shm) and mapped by all its ranks.
usage: shm.py STOP HCL_TRAIN HOLDER_PID_A HOLDER_PID_B"""
import os, re, sys, time
stop, exe, holders = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3:]
nodes = {os.readlink(f"/proc/{h}/ns/net"): n for n, h in zip(("nodeA", "nodeB"), holders)}
mnt = {n: os.readlink(f"/proc/{h}/ns/mnt") for n, h in zip(("nodeA", "nodeB"), holders)}
ranks = {}  # pid -> dict(node, rank, local, mnt, segments={(dev, inode, name)})
while True:
    last = os.path.exists(stop) or not os.path.isdir(os.path.dirname(stop))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            node = nodes.get(os.readlink(f"/proc/{pid}/ns/net"))
            if node is None or os.path.realpath(f"/proc/{pid}/exe") != exe:
                continue
            if pid not in ranks:
                env = dict(v.split("=", 1) for v in open(f"/proc/{pid}/environ").read().split("\0") if "=" in v)
                ranks[pid] = dict(node=node, rank=int(env["OMPI_COMM_WORLD_RANK"]), mnt=os.readlink(f"/proc/{pid}/ns/mnt"),
                                  local=int(env["OMPI_COMM_WORLD_LOCAL_RANK"]), segments=set())
            for line in open(f"/proc/{pid}/maps"):
                m = re.match(r"\S+ \S+ \S+ ([0-9a-f]+):([0-9a-f]+) (\d+)\s+(/dev/shm/|/memfd:)(hcl-\d+-(\d+)-\S+)", line)  # hcl-<pid namespace>-<pid>-...
                if m:
                    dev = os.makedev(int(m[1], 16), int(m[2], 16))
                    ranks[pid]["segments"].add((dev, int(m[3]), m[4] + m[5], m[6]))
        except (OSError, KeyError, ValueError):
            pass  # a process that ended, or one not yet exec'd
    if last:
        break
    time.sleep(0.1)

def fail(message):
    for pid, r in sorted(ranks.items(), key=lambda kv: kv[1]["rank"]):
        print(f"  rank {r['rank']} (local {r['local']}) pid {pid} on {r['node']}: {sorted(s[2] for s in r['segments'])}")
    sys.exit(f"FAIL: node-shared memory: {message}")

if sorted(r["rank"] for r in ranks.values()) != [0, 1, 2, 3]:
    fail(f"saw ranks {sorted(r['rank'] for r in ranks.values())}, not 0-3")
made = {}
for node in ("nodeA", "nodeB"):
    mine = {pid: r for pid, r in ranks.items() if r["node"] == node}
    if len(mine) != 2 or any(r["mnt"] != mnt[node] for r in mine.values()):
        fail(f"{node} does not hold 2 ranks in its own mount namespace")
    for r in mine.values():
        if not r["segments"]:
            fail(f"rank {r['rank']} on {node} maps no node-shared memory")
    sets = {frozenset(r["segments"]) for r in mine.values()}
    if len(sets) != 1:
        fail(f"the ranks of {node} do not map the same node-shared memory")
    segments = next(iter(sets))
    leader = [pid for pid, r in mine.items() if r["local"] == 0]
    if {s[3] for s in segments} != set(leader):
        fail(f"{node}'s segments were not made by its local rank 0 (pid {leader})")
    if any(not s[2].startswith("/memfd:") for s in segments):
        fail(f"{node}'s node-shared memory is not the leader's memfd (all ranks share a PID namespace here)")
    made[node] = segments
if made["nodeA"] & made["nodeB"]:
    fail("the two nodes share segments")
print(f"node-shared memory: 2 nodes, 2 leaders; " + "; ".join(
    f"{n}: {len(s)} memfd(s) made by local rank 0, mapped by both its ranks" for n, s in made.items()))
PY
python3 "$work/shm.py" "$work/shm.stop" "$HCL_TRAIN" "${holders[@]}" > "$work/shm.out" 2>&1 &
sampler=$!
status=0
nodes_train nodeA:2,nodeB:2 4 "$work/2x2" || status=$?
touch "$work/shm.stop"
shm_status=0
wait "$sampler" || shm_status=$?
sampler=""
[ "$status" -eq 0 ] || { cat "$work/2x2.log"; fail "2 nodes x 2 ranks: exit $status"; }
no_strays "2x2"
layout "$work/2x2.log" 4 2 nodeA nodeA nodeB nodeB
same_losses "$work/one-node-4" "$work/2x2"
echo "2x2: 2 nodes seen, losses equal to one node's"
passed=$((passed + 1))
cat "$work/shm.out"
[ "$shm_status" -eq 0 ] || fail "node-shared memory is not per node"
for i in 0 1; do
  ! compgen -G "/proc/${holders[$i]}/root/dev/shm/hcl-*" > /dev/null || fail "${names[$i]}: hcl left memory in /dev/shm"
done
passed=$((passed + 1))

# launch/mpirun_example.sh across the two nodes, mpirun's options before `--`.
example_train nodeA:2,nodeB:2 4 "$work/example" || { cat "$work/example.log"; fail "launch/mpirun_example.sh on 2 nodes"; }
no_strays "launch/mpirun_example.sh"
layout "$work/example.log" 4 2 nodeA nodeA nodeB nodeB
same_losses "$work/one-node-4" "$work/example"
echo "launch/mpirun_example.sh, HOSTS=nodeA:2,nodeB:2: losses equal to one node's"
passed=$((passed + 1))

# An interface with the same address on both nodes (docker0 is a bridge; a veth pair where the
# kernel has no bridges).
for i in 0 1; do
  ip -n "${netns[$i]}" link add dock0 type bridge 2> /dev/null ||
    ip -n "${netns[$i]}" link add dock0 type veth peer name dock0-peer || fail "${names[$i]}: no dock0"
  ip -n "${netns[$i]}" addr add 172.31.255.1/24 dev dock0
  ip -n "${netns[$i]}" link set dock0 up
done
# Without a flag (2x1, and 2x2 where the misrouted connections reach the node's own ranks): hcl's
# start-up deadline (15 s) ends the job with a line naming the cause, well before the outer
# timeout; or the job works. A hang (the timeout fires) or another end fails.
no_flag() {  # no_flag HOSTS NP REF
  local out="$work/same-address-$2" start=$SECONDS status=0 elapsed
  HCL_START_TIMEOUT=15 LIMIT=90 nodes_train "$1" "$2" "$out" || status=$?
  elapsed=$((SECONDS - start))
  no_strays "the run with dock0 on $1"
  if [ "$status" -eq 0 ]; then
    same_losses "$3" "$out"
    echo "same address on both nodes, $1, no flag: works (${elapsed} s), losses equal to one node's"
  elif [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    cat "$out.log"
    fail "same address on both nodes, $1, no flag: still running after $run_limit s (a hang; HCL_START_TIMEOUT=15)"
  elif grep -q "^hcl: error: MPI start-up did not finish within 15 s (rank [0-3] on node[AB]).*btl_tcp_if_include" "$out.log"; then
    echo "same address on both nodes, $1, no flag: exit $status after ${elapsed} s with:"
    grep "^hcl: error: MPI start-up" "$out.log" | cut -c 1-120
  else
    cat "$out.log"
    fail "same address on both nodes, $1, no flag: exit $status after ${elapsed} s without hcl's start-up error"
  fi
}
no_flag nodeA:1,nodeB:1 2 "$work/one-node-2"
no_flag nodeA:2,nodeB:2 4 "$work/one-node-4"
passed=$((passed + 1))
# With the documented flags: through launch/mpirun_example.sh (2x2), and plain mpirun (2x1).
if_flags=(--mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0)
example_train nodeA:2,nodeB:2 4 "$work/example-eth0" "${if_flags[@]}" ||
  { cat "$work/example-eth0.log"; fail "launch/mpirun_example.sh ${if_flags[*]} with dock0"; }
no_strays "launch/mpirun_example.sh ${if_flags[*]}"
layout "$work/example-eth0.log" 4 2 nodeA nodeA nodeB nodeB
same_losses "$work/one-node-4" "$work/example-eth0"
nodes_train nodeA:1,nodeB:1 2 "$work/2x1-eth0" "${if_flags[@]}" || { cat "$work/2x1-eth0.log"; fail "mpirun ${if_flags[*]} with dock0"; }
no_strays "mpirun ${if_flags[*]}"
same_losses "$work/one-node-2" "$work/2x1-eth0"
echo "same address on both nodes, ${if_flags[*]}: works (mpirun_example.sh 2x2, mpirun 2x1), losses equal to one node's"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
