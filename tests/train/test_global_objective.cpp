// Multi-rank tests of the global-batch objective, in both forms (all-gather and ring): the golden
// cases split across ranks, and random batches against the single-process objective on the
// concatenated batch, for every estimator, chunked and unchunked.
#include <gtest/gtest.h>

#include "core/check.h"
#include "core/torch_compat.h"
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
                        const torch::Tensor& z2_all, const loss::ObjectiveOptions& o, ObjectiveComm form) {
  const int w = comm.world_size();
  const int64_t b = z1_all.size(0) / w;
  torch::Tensor z1 = z1_all.narrow(0, comm.rank() * b, b).clone().requires_grad_(true);
  torch::Tensor z2 = z2_all.narrow(0, comm.rank() * b, b).clone().requires_grad_(true);
  const loss::ObjectiveResult r = global_objective(comm, z1, z2, o, form);
  r.loss.backward();
  torch::Tensor loss = r.loss.detach().reshape({1}).clone();
  comm.all_reduce(loss, dist::ReduceOp::Avg);
  // This rank's gradient is W times its share of the global mean's gradient (see the header).
  return {loss.item<double>(), comm.all_gather(z1.grad() / w), comm.all_gather(z2.grad() / w)};
}

const std::pair<torch::ScalarType, ObjectiveComm> kDtypesAndForms[] = {
    {torch::kDouble, ObjectiveComm::AllGather},
    {torch::kFloat, ObjectiveComm::AllGather},
    {torch::kDouble, ObjectiveComm::Ring},
    {torch::kFloat, ObjectiveComm::Ring},
    {torch::kDouble, ObjectiveComm::RingKeep},
    {torch::kFloat, ObjectiveComm::RingKeep},
};

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
    for (auto [dtype, form] : kDtypesAndForms) {
      SCOPED_TRACE(::testing::Message() << dtype << " " << name_of(form));
      const double rtol = dtype == torch::kDouble ? 1e-9 : 2e-5;
      const double atol = dtype == torch::kDouble ? 1e-15 : 1e-6;
      const GlobalResult g = run_global(comm, c.out_1.to(dtype), c.out_2.to(dtype), o, form);
      EXPECT_TRUE(close(torch::tensor(g.loss, torch::kDouble), torch::tensor(c.loss, torch::kDouble), rtol));
      EXPECT_TRUE(close(g.grad_1, c.grad_out_1, rtol, atol));
      EXPECT_TRUE(close(g.grad_2, c.grad_out_2, rtol, atol));
      // The same with column chunks.
      const GlobalResult chunked = run_global(comm, c.out_1.to(dtype), c.out_2.to(dtype),
                                              loss::ObjectiveOptions(o).column_chunk(3), form);
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
    torch::Tensor a = z1_all.clone().requires_grad_(true), p = z2_all.clone().requires_grad_(true);
    const loss::ObjectiveResult single = loss::contrastive_objective(a, p, o);
    single.loss.backward();
    for (ObjectiveComm form : {ObjectiveComm::AllGather, ObjectiveComm::Ring, ObjectiveComm::RingKeep}) {
      for (int64_t chunk : {0, 4}) {
        SCOPED_TRACE(::testing::Message() << name_of(o.estimator()) << " beta " << o.beta() << " "
                                          << name_of(form) << " chunk " << chunk);
        const GlobalResult g = run_global(comm, z1_all, z2_all, loss::ObjectiveOptions(o).column_chunk(chunk), form);
        EXPECT_TRUE(close(torch::tensor(g.loss, torch::kDouble), single.loss.detach(), 1e-12));
        EXPECT_TRUE(close(g.grad_1, a.grad(), 1e-10, 1e-16));
        EXPECT_TRUE(close(g.grad_2, p.grad(), 1e-10, 1e-16));
      }
    }
  }
}

// The statistics the trainer logs are the same in both forms (they are sums over the same columns).
TEST(GlobalObjective, RingStatisticsEqualTheAllGatherForm) {
  dist::Communicator comm;
  const int64_t b = 6, d = 8;
  torch::manual_seed(100 + comm.rank());  // different views on every rank
  const torch::Tensor z1 = torch::nn::functional::normalize(torch::randn({b, d}, torch::kDouble));
  const torch::Tensor z2 = torch::nn::functional::normalize(torch::randn({b, d}, torch::kDouble));
  for (const auto& o : {loss::ObjectiveOptions(), loss::ObjectiveOptions().beta(0.0),
                        loss::ObjectiveOptions().estimator(loss::Estimator::Easy)}) {
    SCOPED_TRACE(::testing::Message() << name_of(o.estimator()) << " beta " << o.beta());
    const loss::ObjectiveStats all = global_objective(comm, z1, z2, o, ObjectiveComm::AllGather).stats;
    for (ObjectiveComm form : {ObjectiveComm::Ring, ObjectiveComm::RingKeep}) {
      const loss::ObjectiveStats ring = global_objective(comm, z1, z2, o, form).stats;
      for (const auto& [x, y] : {std::pair{all.positive_similarity, ring.positive_similarity},
                                 std::pair{all.negative_similarity, ring.negative_similarity},
                                 std::pair{all.floor_fraction, ring.floor_fraction},
                                 std::pair{all.effective_negatives, ring.effective_negatives}})
        EXPECT_NEAR(x.item<double>(), y.item<double>(), 1e-6) << name_of(form);
    }
  }
}

// bfloat16 views go round the ring in float32 and their gradients come back in bfloat16, as in the
// all-gather form.
TEST(GlobalObjective, RingOfHalfPrecisionViewsMatchesTheAllGatherForm) {
  dist::Communicator comm;
  torch::manual_seed(200 + comm.rank());
  const torch::Tensor z1 = torch::nn::functional::normalize(torch::randn({4, 8})).to(torch::kBFloat16);
  const torch::Tensor z2 = torch::nn::functional::normalize(torch::randn({4, 8})).to(torch::kBFloat16);
  torch::Tensor grads[2][2];
  double losses[2];
  for (ObjectiveComm form : {ObjectiveComm::AllGather, ObjectiveComm::Ring}) {
    const int f = form == ObjectiveComm::Ring;
    torch::Tensor a = z1.clone().requires_grad_(true), p = z2.clone().requires_grad_(true);
    const loss::ObjectiveResult r = global_objective(comm, a, p, {}, form);
    r.loss.backward();
    losses[f] = r.loss.item<double>();
    grads[f][0] = a.grad();
    grads[f][1] = p.grad();
  }
  EXPECT_NEAR(losses[0], losses[1], 1e-5);
  EXPECT_EQ(grads[1][0].scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::allclose(grads[0][0].to(torch::kFloat), grads[1][0].to(torch::kFloat), 1e-2, 1e-3));
  EXPECT_TRUE(torch::allclose(grads[0][1].to(torch::kFloat), grads[1][1].to(torch::kFloat), 1e-2, 1e-3));
}

// Views in a few tight clusters, the positive next to its anchor: scores near 1/t for many pairs.
std::pair<torch::Tensor, torch::Tensor> clustered_views(int64_t images, int64_t dim, int64_t clusters, uint64_t seed) {
  torch::manual_seed(seed);
  const auto normalize = [](const torch::Tensor& x) { return torch::nn::functional::normalize(x); };
  const torch::Tensor centres = normalize(torch::randn({clusters, dim}, torch::kDouble));
  const torch::Tensor members = centres.index_select(0, torch::randint(clusters, {images}));
  const torch::Tensor z1 = normalize(members + 0.1 * torch::randn({images, dim}, torch::kDouble));
  const torch::Tensor z2 = normalize(z1 + 0.1 * torch::randn({images, dim}, torch::kDouble));
  return {z1, z2};
}

// Column chunks merge their sums without adding rounding: on an extreme case (beta 6, t 0.1,
// tau+ 0.02, 60 images, 128 dimensions, clustered: log-sum-exps up to about 45) the float32 loss
// and gradients with 3 or 7 columns per chunk equal the unchunked ones to float32 rounding, and all
// are within the golden tolerance of float64, in every form.
TEST(GlobalObjective, Float32ChunksAsAccurateAsNoChunksOnAnExtremeCase) {
  dist::Communicator comm;
  const auto [z1, z2] = clustered_views(60, 128, 6, 31);
  const auto o = loss::ObjectiveOptions().temperature(0.1).beta(6.0).tau_plus(0.02);
  const GlobalResult exact = run_global(comm, z1, z2, o, ObjectiveComm::AllGather);
  for (ObjectiveComm form : {ObjectiveComm::AllGather, ObjectiveComm::Ring, ObjectiveComm::RingKeep}) {
    const torch::Tensor f1 = z1.to(torch::kFloat), f2 = z2.to(torch::kFloat);
    for (int64_t chunk : {0, 3, 7}) {
      SCOPED_TRACE(::testing::Message() << name_of(form) << ", chunk " << chunk);
      const GlobalResult g = run_global(comm, f1, f2, loss::ObjectiveOptions(o).column_chunk(chunk), form);
      EXPECT_TRUE(close(torch::tensor(g.loss, torch::kDouble), torch::tensor(exact.loss, torch::kDouble), 2e-5));
      EXPECT_TRUE(close(g.grad_1, exact.grad_1, 2e-5, 1e-6));
      EXPECT_TRUE(close(g.grad_2, exact.grad_2, 2e-5, 1e-6));
    }
  }
}

// Autocast around forward and backward changes nothing: the autograd engine carries the caller's
// autocast state into backward, and the objective's hand-written backward functions (all-gather and
// ring forms) recompute their scores in full precision all the same. The CPU's bf16 autocast stands
// in for the training step's CUDA one; on a GPU the CUDA test below runs (scripts/gpu_check).
void expect_autocast_changes_nothing(const torch::Device& device) {
  dist::Communicator comm;
  const auto [z1_all, z2_all] = clustered_views(8 * comm.world_size(), 32, 3, 41);
  const torch::Tensor z1 = z1_all.to(device, torch::kFloat), z2 = z2_all.to(device, torch::kFloat);
  for (double beta : {0.5, 1.0, 2.0}) {
    for (ObjectiveComm form : {ObjectiveComm::AllGather, ObjectiveComm::Ring, ObjectiveComm::RingKeep}) {
      SCOPED_TRACE(::testing::Message() << name_of(form) << ", beta " << beta);
      const auto o = loss::ObjectiveOptions().beta(beta).column_chunk(beta == 1.0 ? 5 : 0);
      const GlobalResult plain = run_global(comm, z1, z2, o, form);
      GlobalResult mixed;
      {
        const compat::AutocastScope bf16(device.type(), torch::kBFloat16);
        mixed = run_global(comm, z1, z2, o, form);
      }
      EXPECT_EQ(plain.loss, mixed.loss);
      EXPECT_TRUE(torch::equal(plain.grad_1.cpu(), mixed.grad_1.cpu()));
      EXPECT_TRUE(torch::equal(plain.grad_2.cpu(), mixed.grad_2.cpu()));
    }
  }
}

TEST(GlobalObjective, AutocastAroundForwardAndBackwardChangesNothing) {
  expect_autocast_changes_nothing(torch::kCPU);
}

TEST(GlobalObjective, CudaAutocastAroundForwardAndBackwardChangesNothing) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  HCL_ONLY_AT_RANKS(1);  // NCCL takes one rank per GPU, and a GPU machine has one
  expect_autocast_changes_nothing(torch::Device(torch::kCUDA, 0));
}

TEST(GlobalObjective, RejectsMismatchedViews) {
  dist::Communicator comm;
  EXPECT_THROW(global_objective(comm, torch::ones({4, 3}), torch::ones({3, 3}), {}), Error);
  EXPECT_THROW(global_objective(comm, torch::ones({4, 3}), torch::ones({3, 3}), {}, ObjectiveComm::Ring), Error);
  torch::Tensor nan = torch::ones({4, 3});
  nan[0][0] = std::nan("");
  EXPECT_THROW(global_objective(comm, nan, torch::ones({4, 3}), {}, ObjectiveComm::Ring), Error);
}

}  // namespace
}  // namespace hcl::train
