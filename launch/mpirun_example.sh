#!/usr/bin/env bash
# Example: hcl-train with mpirun (OpenMPI), one rank per GPU, on one node or several.
#   launch/mpirun_example.sh 8                      # 8 ranks on this node
#   HOSTS=node1:8,node2:8 launch/mpirun_example.sh 16 --arch resnet50 --batch-size 256
#   HOSTS=node1:8,node2:8 launch/mpirun_example.sh 16 --mca btl_tcp_if_include eth0 -- --arch resnet50
# Extra arguments go to hcl-train; when they hold a `--`, those before it go to mpirun (any value,
# spaces included) and those after it to hcl-train. Each rank uses the GPU of its local rank (its
# place among the ranks of its node), or the CPU when there is none.
#
# Several nodes: choose the network interface first. When the nodes have another interface with
# the same address on each (docker0, virbr0), OpenMPI may pick it and the ranks cannot reach each
# other: hcl-train then ends after HCL_START_TIMEOUT seconds (300) with a line naming this cause.
# Name the interface that joins the nodes (here eth0) for MPI and for NCCL:
#   NCCL_SOCKET_IFNAME=eth0 HOSTS=... launch/mpirun_example.sh 16 \
#     --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 -- --config my.conf
# (or exclude the bad one: --mca btl_tcp_if_exclude lo,docker0 --mca oob_tcp_if_exclude lo,docker0).
#
# HOSTS: host:slots,... (slots: GPUs of that host). The ranks per node (RANKS_PER_NODE) then come
# from the host list, not the total: 16 ranks over node1:8,node2:8 place 8 on each, and a job that
# does not fit the listed slots is refused rather than oversubscribed onto the first host. Without
# HOSTS, all ranks run on this node (oversubscribed when there are more ranks than cores).
# HCL_TRAIN overrides the program (default: build/launch/hcl-train of this checkout);
# MPIRUN_FLAGS adds mpirun options split at spaces (e.g. "--display-map", or "--mca
# btl_tcp_if_include ib0"); for values with spaces, give them before `--` instead.
#
# Environment forwarded to every rank with -x (remote nodes do not inherit this shell's):
#   PATH, LD_LIBRARY_PATH      where the programs and their libraries (LibTorch, NCCL) are found
#   OMP_NUM_THREADS            CPU threads per rank (4 unless set)
#   NCCL_DEBUG                 INFO prints the rings and transports NCCL chose (WARN unless set)
#   NCCL_SOCKET_IFNAME         the network interface for NCCL's bootstrap and socket transport when
#                              a node has several (for example eth0 or ib0)
#   NCCL_IB_HCA                the InfiniBand adapters NCCL may use (for example mlx5_0,mlx5_1)
#   every other NCCL_* and HCL_* variable that is set (NCCL_P2P_LEVEL, HCL_FAULT, ...)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ranks="${1:-2}"; shift || true
die() { echo "mpirun_example.sh: $*" >&2; exit 2; }
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || die "the first argument must be the number of ranks, got '$ranks'"
# mpirun's own options: those before a `--`, when there is one.
mpirun_args=()
for arg in "$@"; do
  if [ "$arg" = -- ]; then
    while [ "$1" != -- ]; do mpirun_args+=("$1"); shift; done
    shift
    break
  fi
done

flags=(--bind-to none)
if [ -n "${HOSTS:-}" ]; then
  # Ranks per node: the hosts' slot count (all equal), unless RANKS_PER_NODE says otherwise.
  IFS=, read -r -a hosts <<< "$HOSTS"
  slots=""
  for host in "${hosts[@]}"; do
    [[ "$host" =~ ^[^:]+:([1-9][0-9]*)$ ]] || die "HOSTS: '$host' is not host:slots (e.g. node1:8)"
    [ -z "$slots" ] || [ "$slots" = "${BASH_REMATCH[1]}" ] || [ -n "${RANKS_PER_NODE:-}" ] ||
      die "HOSTS: hosts have different slot counts; set RANKS_PER_NODE"
    slots="${BASH_REMATCH[1]}"
  done
  per_node="${RANKS_PER_NODE:-$slots}"
  [ "$ranks" -le $((per_node * ${#hosts[@]})) ] ||
    die "$ranks ranks do not fit ${#hosts[@]} host(s) x $per_node ranks per node (HOSTS=$HOSTS)"
  flags+=(--host "$HOSTS" --map-by "ppr:${per_node}:node")
else
  flags+=(--map-by "ppr:${RANKS_PER_NODE:-$ranks}:node")
  if [ "$ranks" -gt "$(nproc)" ]; then flags+=(--oversubscribe); fi
fi
if [ "$(id -u)" -eq 0 ]; then flags+=(--allow-run-as-root); fi

export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}" NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
env_flags=(-x PATH -x OMP_NUM_THREADS)
if [ -n "${LD_LIBRARY_PATH:-}" ]; then env_flags+=(-x LD_LIBRARY_PATH); fi
while IFS= read -r name; do env_flags+=(-x "$name"); done < <(compgen -e | grep -E '^(NCCL|HCL)_' | sort)

# shellcheck disable=SC2086  # MPIRUN_FLAGS holds several options
exec mpirun -np "$ranks" "${flags[@]}" "${env_flags[@]}" ${MPIRUN_FLAGS:-} ${mpirun_args[@]+"${mpirun_args[@]}"} \
  "${HCL_TRAIN:-$root/build/launch/hcl-train}" "$@"
