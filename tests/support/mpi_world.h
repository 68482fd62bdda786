// Small helpers for multi-rank tests: this process's rank and world size on MPI_COMM_WORLD, and a
// skip for tests that are meaningful at some rank counts only (CTest runs every test program at
// each of its rank counts, without a filter).
#pragma once

#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <initializer_list>

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

inline bool world_size_is_one_of(std::initializer_list<int> sizes) {
  return std::find(sizes.begin(), sizes.end(), world_size()) != sizes.end();
}

}  // namespace hcl::test

// In a test body: skips the test unless the job has one of the given numbers of ranks, e.g.
// HCL_ONLY_AT_RANKS(1) for single-process units run inside a multi-rank program.
#define HCL_ONLY_AT_RANKS(...)                                                              \
  do {                                                                                      \
    if (!::hcl::test::world_size_is_one_of({__VA_ARGS__}))                                  \
      GTEST_SKIP() << "meaningful at " #__VA_ARGS__ " rank(s) only, not at " << ::hcl::test::world_size(); \
  } while (0)
