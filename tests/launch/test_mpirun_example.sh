#!/usr/bin/env bash
# launch/mpirun_example.sh: with HOSTS=node1:8,node2:8 and 16 ranks, mpirun's own map (mpirun
# --do-not-launch --display-map over the fake hosts) places 8 ranks on each node; a job larger than
# the listed slots is refused (not oversubscribed onto one host); PATH, LD_LIBRARY_PATH and the
# NCCL_* / HCL_* settings reach every rank with -x; without HOSTS, ranks run on this node.
source "$(dirname "$0")/common.sh"
script="$(cd "$(dirname "$0")/../../launch" && pwd)/mpirun_example.sh"
passed=0

# mpirun's map of 16 ranks over two fake hosts (nothing is launched; mpirun's exit code then says
# nothing, its map does).
HOSTS=node1:8,node2:8 HCL_TRAIN="$HCL_TRAIN" MPIRUN_FLAGS="--do-not-launch --display-map" \
  timeout -k 5 60 bash "$script" 16 --arch small > "$work/map.log" 2>&1 || true
for node in node1 node2; do
  grep -q "Data for node: $node.*Num procs: 8" "$work/map.log" || { cat "$work/map.log"; fail "$node does not get 8 ranks"; }
done
[ "$(grep -c "Process rank:" "$work/map.log")" -eq 16 ] || { cat "$work/map.log"; fail "not 16 ranks in the map"; }
passed=$((passed + 1))

# The command line, through a stub mpirun: -x for the environment, no --oversubscribe with hosts.
mkdir "$work/bin"
printf '#!/usr/bin/env bash\nprintf "%%s\\n" "$@" > "%s/mpirun.args"\n' "$work" > "$work/bin/mpirun"
chmod +x "$work/bin/mpirun"
PATH="$work/bin:$PATH" HOSTS=node1:8,node2:8 LD_LIBRARY_PATH=/opt/lib NCCL_IB_HCA=mlx5_0 NCCL_SOCKET_IFNAME=ib0 \
  HCL_FAULT=none HCL_TRAIN="$HCL_TRAIN" bash "$script" 16 --arch small || fail "stub mpirun"
args="$(tr '\n' ' ' < "$work/mpirun.args")"
for want in "-np 16 " "--host node1:8,node2:8 " "--map-by ppr:8:node " "-x PATH " "-x LD_LIBRARY_PATH " \
  "-x NCCL_IB_HCA " "-x NCCL_SOCKET_IFNAME " "-x NCCL_DEBUG " "-x HCL_FAULT " "-x OMP_NUM_THREADS " "$HCL_TRAIN --arch small"; do
  [[ "$args" == *"$want"* ]] || fail "mpirun line lacks '$want': $args"
done
[[ "$args" != *--oversubscribe* ]] || fail "oversubscribed across hosts: $args"
passed=$((passed + 1))

# More ranks than the hosts' slots, and a malformed host list: refused with one line, exit 2.
for case in "node1:8,node2:8 24 do not fit 2 host(s) x 8 ranks per node" "node1,node2 16 'node1' is not host:slots" \
  "node1:8,node2:4 12 different slot counts"; do
  read -r hosts ranks message <<< "$case"
  status=0
  PATH="$work/bin:$PATH" HOSTS="$hosts" bash "$script" "$ranks" > "$work/err" 2>&1 || status=$?
  [ "$status" -eq 2 ] && grep -qF -- "$message" "$work/err" || { cat "$work/err"; fail "HOSTS=$hosts with $ranks ranks: exit $status"; }
done
passed=$((passed + 1))

# Without HOSTS: a real launch on this node (4 ranks, oversubscribed on fewer cores).
HCL_TRAIN="$(command -v hostname)" timeout -k 5 60 bash "$script" 4 > "$work/local.log" 2>&1 ||
  { cat "$work/local.log"; fail "local launch"; }
[ "$(wc -l < "$work/local.log")" -eq 4 ] || { cat "$work/local.log"; fail "not 4 ranks started"; }
passed=$((passed + 1))
echo "$passed passed, 0 failed"
