// Tests of the check macros: a failing MPI call names the call, the error, the rank, host and line.
#include <gtest/gtest.h>

#include "core/check.h"

namespace {

TEST(Check, MpiFailureNamesCallErrorRankAndLine) {
  int rank = -1;
  int line = 0;
  try {
    line = __LINE__ + 1;
    HCL_CHECK_MPI(MPI_Comm_rank(MPI_COMM_NULL, &rank));
    FAIL() << "no exception";
  } catch (const hcl::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MPI call failed: MPI_Comm_rank(MPI_COMM_NULL, &rank)"), std::string::npos)
        << what;
    EXPECT_NE(what.find("MPI_ERR_COMM"), std::string::npos) << what;
    int my_rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
    EXPECT_NE(what.find("rank " + std::to_string(my_rank) + " on host "), std::string::npos) << what;
    EXPECT_NE(what.find("test_check.cpp:" + std::to_string(line)), std::string::npos) << what;
  }
}

TEST(Check, SuccessfulCallDoesNotThrow) {
  int size = 0;
  EXPECT_NO_THROW(HCL_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size)));
  EXPECT_GE(size, 1);
}

TEST(Check, RequireStreamsItsMessage) {
  const double temperature = -0.5;
  try {
    HCL_REQUIRE(temperature > 0, "temperature must be > 0, got ", temperature);
    FAIL() << "no exception";
  } catch (const hcl::Error& e) {
    EXPECT_STREQ(e.what(), "temperature must be > 0, got -0.5");
  }
}

}  // namespace
