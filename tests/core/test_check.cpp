// Tests of core's checks: HCL_REQUIRE streams its message, HCL_ASSERT names the condition, file and
// line, and run_guarded maps input and agreed errors to their exit codes (the MPI check is tested
// in tests/dist/test_mpi_check.cpp, beside the MPI code).
#include <gtest/gtest.h>

#include "core/check.h"
#include "core/run_guarded.h"

namespace {

TEST(Check, RequireStreamsItsMessage) {
  const double temperature = -0.5;
  try {
    HCL_REQUIRE(temperature > 0, "temperature must be > 0, got ", temperature);
    FAIL() << "no exception";
  } catch (const hcl::Error& e) {
    EXPECT_STREQ(e.what(), "temperature must be > 0, got -0.5");
  }
}

TEST(Check, AssertNamesConditionFileAndLine) {
  const int buckets = 0;
  int line = 0;
  try {
    line = __LINE__ + 1;
    HCL_ASSERT(buckets > 0, "no bucket for ", 3, " parameters");
    FAIL() << "no exception";
  } catch (const hcl::InternalError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("internal error: buckets > 0 does not hold: no bucket for 3 parameters"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find(" on host "), std::string::npos) << what;
    EXPECT_NE(what.find("test_check.cpp:" + std::to_string(line)), std::string::npos) << what;
  }
  EXPECT_NO_THROW(HCL_ASSERT(buckets == 0));
  EXPECT_THROW(HCL_ASSERT(buckets == 1), hcl::Error);  // an InternalError is an hcl::Error
}

TEST(Check, RunGuardedMapsErrorsToExitCodes) {
  EXPECT_EQ(hcl::run_guarded("test", [] { return 0; }), 0);
  EXPECT_EQ(hcl::run_guarded("test", [] { return 3; }), 3);
  testing::internal::CaptureStderr();
  EXPECT_EQ(hcl::run_guarded("test", []() -> int { throw hcl::InputError("bad --lr"); }), 2);
  const std::string err = testing::internal::GetCapturedStderr();
  // Rank 0 (or a plain process) says why, in one line; the other ranks stay silent.
  EXPECT_TRUE(err == "test: error: bad --lr\n" || err.empty()) << err;
  EXPECT_EQ(hcl::run_guarded("test", []() -> int { throw hcl::AgreedError("10 steps skipped"); }), 1);
}

TEST(Check, AsInputTurnsAnyErrorIntoInputError) {
  EXPECT_EQ(hcl::as_input([] { return 7; }), 7);
  EXPECT_THROW(hcl::as_input([]() -> int { throw std::invalid_argument("--lr: cannot read 'abc'"); }),
               hcl::InputError);
  try {
    hcl::as_input([] { HCL_REQUIRE(false, "--epochs: must be >= 1, got 0"); });
    FAIL() << "no exception";
  } catch (const hcl::InputError& e) {
    EXPECT_STREQ(e.what(), "--epochs: must be >= 1, got 0");
  }
}

}  // namespace
