// GoogleTest main for every test program: initialises MPI (one plain process or many under
// mpirun), prints the full report on rank 0 and only failures elsewhere, and fails every rank when
// any rank failed, so that mpirun's exit code reflects all of them.
#include <gtest/gtest.h>

#include <iostream>

#include "core/log.h"
#include "dist/runtime.h"

namespace {

// Prints failed assertions of a non-zero rank, tagged with the rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::cerr << "[rank " << rank_ << "] " << (result.file_name() ? result.file_name() : "?")
              << ":" << result.line_number() << ": failure\n"
              << result.summary() << std::endl;
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  hcl::dist::MpiRuntime mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  hcl::log::init({mpi.rank(), mpi.world_size(), hcl::log::Severity::warning, ""});
  if (mpi.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(mpi.rank()));
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  // A CTest entry whose filter selects nothing would otherwise pass without testing anything.
  if (::testing::UnitTest::GetInstance()->test_to_run_count() == 0) {
    std::cerr << "no test matched the filter" << std::endl;
    failed = 1;
  }
  int any_failed = failed;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any_failed && !failed) std::cerr << "[rank " << mpi.rank() << "] another rank failed\n";
  return any_failed;
}
