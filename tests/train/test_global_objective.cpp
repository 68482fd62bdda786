// Multi-rank tests of the global-batch objective: the golden cases split across ranks, and random
// batches against the single-process objective on the concatenated batch, for every estimator.
#include <gtest/gtest.h>

#include "core/check.h"
#include "tests/support/golden.h"
#include "tests/support/mpi_world.h"
#include "train/global_objective.h"

namespace hcl::train {
namespace {

using test::close;

struct GlobalResult {
  double loss;            // average of the ranks' losses
  torch::Tensor grad_1;   // d(global mean loss)/d z1 for all W*B images, gathered
  torch::Tensor grad_2;
};

// Runs the global objective on this rank's rows [r*b, (r+1)*b) of the full views.
GlobalResult run_global(dist::Communicator& comm, const torch::Tensor& z1_all,
                        const torch::Tensor& z2_all, const loss::ObjectiveOptions& o) {
  const int w = comm.world_size();
  const int64_t b = z1_all.size(0) / w;
  torch::Tensor z1 = z1_all.narrow(0, comm.rank() * b, b).clone().requires_grad_(true);
  torch::Tensor z2 = z2_all.narrow(0, comm.rank() * b, b).clone().requires_grad_(true);
  const loss::ObjectiveResult r = global_objective(comm, z1, z2, o);
  r.loss.backward();
  torch::Tensor loss = r.loss.detach().reshape({1}).clone();
  comm.all_reduce(loss, dist::ReduceOp::Avg);
  // This rank's gradient is W times its share of the global mean's gradient (see the header).
  return {loss.item<double>(), comm.all_gather(z1.grad() / w), comm.all_gather(z2.grad() / w)};
}

TEST(GlobalObjective, GoldenCasesSplitAcrossRanks) {
  dist::Communicator comm;
  const int w = comm.world_size();
  int compared = 0;
  for (const auto& file : test::golden_files()) {
    const test::GoldenCase c = test::load_golden(file);
    if (c.batch % w != 0) continue;  // W must divide B; such a case is skipped, not failed
    SCOPED_TRACE(c.file);
    const auto o = loss::ObjectiveOptions()
                       .temperature(c.temperature)
                       .beta(c.beta)
                       .tau_plus(c.tau_plus)
                       .estimator(parse<loss::Estimator>("estimator", c.estimator));
    for (auto dtype : {torch::kDouble, torch::kFloat}) {
      const double rtol = dtype == torch::kDouble ? 1e-9 : 2e-5;
      const double atol = dtype == torch::kDouble ? 1e-15 : 1e-6;
      const GlobalResult g = run_global(comm, c.out_1.to(dtype), c.out_2.to(dtype), o);
      EXPECT_TRUE(close(torch::tensor(g.loss, torch::kDouble), torch::tensor(c.loss, torch::kDouble), rtol));
      EXPECT_TRUE(close(g.grad_1, c.grad_out_1, rtol, atol));
      EXPECT_TRUE(close(g.grad_2, c.grad_out_2, rtol, atol));
      // The same with column chunks.
      const GlobalResult chunked = run_global(comm, c.out_1.to(dtype), c.out_2.to(dtype),
                                              loss::ObjectiveOptions(o).column_chunk(3));
      EXPECT_TRUE(close(torch::tensor(chunked.loss, torch::kDouble), torch::tensor(c.loss, torch::kDouble), rtol));
      EXPECT_TRUE(close(chunked.grad_1, c.grad_out_1, rtol, atol));
    }
    ++compared;
  }
  EXPECT_GE(compared, 1) << "no golden case has a batch divisible by " << w;
}

TEST(GlobalObjective, EqualsOneProcessOnTheConcatenatedBatch) {
  dist::Communicator comm;
  const int w = comm.world_size();
  const int64_t b = 5, d = 12;
  torch::manual_seed(7);  // the same global batch on every rank
  const auto normalize = [](const torch::Tensor& x) {
    return x / x.norm(2, 1, true);
  };
  const torch::Tensor z1_all = normalize(torch::randn({w * b, d}, torch::kDouble));
  const torch::Tensor z2_all = normalize(torch::randn({w * b, d}, torch::kDouble));
  for (const auto& o : {loss::ObjectiveOptions(), loss::ObjectiveOptions().beta(0.0),
                        loss::ObjectiveOptions().beta(0.0).tau_plus(0.0),
                        loss::ObjectiveOptions().beta(3.0).tau_plus(0.3).temperature(0.2),
                        loss::ObjectiveOptions().estimator(loss::Estimator::Easy)}) {
    SCOPED_TRACE(::testing::Message() << name_of(o.estimator()) << " beta " << o.beta());
    torch::Tensor a = z1_all.clone().requires_grad_(true), p = z2_all.clone().requires_grad_(true);
    const loss::ObjectiveResult single = loss::contrastive_objective(a, p, o);
    single.loss.backward();
    const GlobalResult g = run_global(comm, z1_all, z2_all, o);
    EXPECT_TRUE(close(torch::tensor(g.loss, torch::kDouble), single.loss.detach(), 1e-12));
    EXPECT_TRUE(close(g.grad_1, a.grad(), 1e-10, 1e-16));
    EXPECT_TRUE(close(g.grad_2, p.grad(), 1e-10, 1e-16));
  }
}

TEST(GlobalObjective, RejectsMismatchedViews) {
  dist::Communicator comm;
  EXPECT_THROW(global_objective(comm, torch::ones({4, 3}), torch::ones({3, 3}), {}), Error);
}

}  // namespace
}  // namespace hcl::train
