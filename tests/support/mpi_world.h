// Small helpers for multi-rank tests: this process's rank and world size on MPI_COMM_WORLD.
#pragma once

#include <mpi.h>

namespace hcl::test {

inline int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

inline int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

}  // namespace hcl::test
