// Tests of HCL_CHECK_MPI (dist/mpi_check.h): a failing MPI call names the call, the error, the rank
// (read through the job hook that dist::MpiRuntime registers in core), the host and the line.
#include <gtest/gtest.h>

#include "core/job.h"
#include "dist/mpi_check.h"

namespace {

TEST(MpiCheck, FailureNamesCallErrorRankAndLine) {
  int rank = -1;
  int line = 0;
  try {
    line = __LINE__ + 1;
    HCL_CHECK_MPI(MPI_Comm_rank(MPI_COMM_NULL, &rank));
    FAIL() << "no exception";
  } catch (const hcl::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MPI call failed: MPI_Comm_rank(MPI_COMM_NULL, &rank)"), std::string::npos) << what;
    EXPECT_NE(what.find("MPI_ERR_COMM"), std::string::npos) << what;
    int my_rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    EXPECT_NE(what.find("rank " + std::to_string(my_rank) + " on host "), std::string::npos) << what;
    EXPECT_NE(what.find("test_mpi_check.cpp:" + std::to_string(line)), std::string::npos) << what;
  }
}

TEST(MpiCheck, SuccessfulCallDoesNotThrow) {
  int size = 0;
  EXPECT_NO_THROW(HCL_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size)));
  EXPECT_GE(size, 1);
}

TEST(MpiCheck, RuntimeRegistersTheRankInCore) {
  int my_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
  EXPECT_TRUE(hcl::job::running());
  EXPECT_EQ(hcl::job::rank(), my_rank);
}

}  // namespace
