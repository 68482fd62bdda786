#!/usr/bin/env bash
# Example: hcl-train with mpirun, one rank per GPU, on one node or several.
#   launch/mpirun_example.sh 8                      # 8 ranks on this node
#   HOSTS=node1:8,node2:8 launch/mpirun_example.sh 16 --arch resnet50 --batch-size 256
# Extra arguments go to hcl-train. Each rank uses the GPU of its local rank (MPI_COMM_TYPE_SHARED),
# or the CPU when there is none.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ranks="${1:-2}"; shift || true

flags=(--map-by "ppr:${RANKS_PER_NODE:-$ranks}:node" --bind-to none)
if [ -n "${HOSTS:-}" ]; then flags+=(--host "$HOSTS"); fi
if [ "$(id -u)" -eq 0 ]; then flags+=(--allow-run-as-root); fi
if [ "$ranks" -gt "$(nproc)" ]; then flags+=(--oversubscribe); fi

# NCCL_DEBUG=INFO prints the rings and transports NCCL chose (WARN: errors only).
# NCCL_SOCKET_IFNAME picks the network interface for NCCL's bootstrap and socket transport when a
# node has several (for example eth0 or ib0); NCCL_IB_HCA picks InfiniBand adapters.
exec mpirun -np "$ranks" "${flags[@]}" \
  -x NCCL_DEBUG="${NCCL_DEBUG:-WARN}" ${NCCL_SOCKET_IFNAME:+-x NCCL_SOCKET_IFNAME} \
  -x OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}" \
  "$root/build/launch/hcl-train" "$@"
