// The test that guards the whole trainer: W ranks x B images train exactly like one process with
// W*B images (different images on each rank): the same loss, the same gradients and, after K = 5
// optimizer steps, the same parameters, with SGD without and with momentum and with Adam, with
// SyncBatchNorm, for the hard, debiased and easy objectives, both view-forward modes, and both ways
// of running the gradient buckets. Per-rank BatchNorm is shown to differ.
#include <gtest/gtest.h>

#include "dist/data_parallel.h"
#include "dist/sync_batchnorm.h"
#include "tests/support/golden.h"
#include "tests/support/mpi_world.h"
#include "train/optim.h"
#include "train/step.h"

namespace hcl::train {
namespace {

constexpr int64_t kSteps = 5, kPerRank = 4;

struct Config {
  std::string optimizer;
  double momentum = 0;
  loss::ObjectiveOptions objective;
  torch::ScalarType dtype = torch::kDouble;
  ViewForward mode = ViewForward::PerView;
  bool sync_bn = true;
  bool overlap = true;
};

struct Trace {
  std::vector<double> losses;
  std::vector<torch::Tensor> first_grads;  // step 0, every parameter
  std::vector<torch::Tensor> params;       // after kSteps
};

// The global batches of every step: (kSteps, W*B, 1, 8, 8) for each view, the same on all ranks.
std::pair<torch::Tensor, torch::Tensor> global_views(int world) {
  torch::manual_seed(1234);
  return {torch::randn({kSteps, world * kPerRank, 1, 8, 8}, torch::kDouble),
          torch::randn({kSteps, world * kPerRank, 1, 8, 8}, torch::kDouble)};
}

Trace train(dist::Communicator& comm, const Config& s, int world) {
  const auto [view1, view2] = global_views(world);
  const int64_t b = view1.size(1) / comm.world_size();
  model::NormFactory norm;
  if (s.sync_bn) {
    norm.norm2d = [&comm](int64_t c) { return torch::nn::AnyModule(dist::SyncBatchNorm(c, comm)); };
    norm.norm1d = norm.norm2d;
  }
  torch::manual_seed(99);  // identical initialisation in both runs
  model::ContrastiveModel net(model::ModelOptions()
                                  .encoder(model::EncoderOptions().arch("small").in_channels(1).norm(norm))
                                  .head_hidden(32)
                                  .projection_dim(16));
  net->to(s.dtype);
  dist::DataParallel dp(comm, *net, dist::DataParallelOptions().bucket_bytes(4096).overlap(s.overlap));
  dp.broadcast_from_root();
  dp.verify_replicas();
  Optimizer opt(*net, OptimizerOptions().name(s.optimizer).lr(s.optimizer == "adam" ? 1e-3 : 0.05)
                          .momentum(s.momentum).weight_decay(1e-4));
  Trace trace;
  for (int64_t step = 0; step < kSteps; ++step) {
    const torch::Tensor v1 = view1[step].narrow(0, comm.rank() * b, b).to(s.dtype);
    const torch::Tensor v2 = view2[step].narrow(0, comm.rank() * b, b).to(s.dtype);
    opt.zero_grad();
    dp.begin(true);
    const StepOutput out = forward_backward(net, comm, v1, v2, s.mode, s.objective);
    dp.finish();
    torch::Tensor loss = out.loss.reshape({1}).to(torch::kDouble);
    comm.all_reduce(loss, dist::ReduceOp::Avg);
    trace.losses.push_back(loss.item<double>());
    if (step == 0)
      for (const auto& p : net->parameters()) trace.first_grads.push_back(p.grad().clone());
    opt.step();
  }
  for (const auto& p : net->parameters()) trace.params.push_back(p.detach().clone());
  return trace;
}

void expect_equivalent(const Config& s) {
  const int world = test::world_size();
  dist::Communicator everyone;                  // W ranks x B images
  dist::Communicator alone(MPI_COMM_SELF);      // 1 process x W*B images
  const Trace many = train(everyone, s, world);
  const Trace one = train(alone, s, world);
  const bool wide = s.dtype == torch::kDouble;
  const double rtol = wide ? 1e-9 : 1e-4, atol = wide ? 1e-13 : 1e-6;
  for (int64_t k = 0; k < kSteps; ++k)
    EXPECT_TRUE(test::close(torch::tensor(many.losses[k], torch::kDouble), torch::tensor(one.losses[k], torch::kDouble), rtol))
        << "loss at step " << k;
  for (size_t i = 0; i < many.params.size(); ++i) {
    EXPECT_TRUE(test::close(many.first_grads[i], one.first_grads[i], rtol, atol)) << "gradient " << i;
    // In float32, Adam moves an entry whose gradient is at rounding level by about +-lr either way
    // (it normalises each entry), so parameters compare as whole tensors there.
    EXPECT_TRUE(wide ? test::close(many.params[i], one.params[i], rtol, atol)
                     : test::close_norm(many.params[i], one.params[i], rtol))
        << "parameter " << i << " after 5 steps";
  }
}

std::string describe(const Config& s) {
  return ::testing::PrintToString(s.optimizer) + " momentum " + std::to_string(s.momentum) + " " +
         loss::to_string(s.objective.estimator()) + " beta " + std::to_string(s.objective.beta()) +
         " " + to_string(s.mode) + (s.overlap ? " overlap" : " after-backward") + " " +
         c10::toString(s.dtype);
}

const std::vector<loss::ObjectiveOptions> kObjectives = {
    loss::ObjectiveOptions(),                                           // hard
    loss::ObjectiveOptions().beta(0.0),                                 // debiased
    loss::ObjectiveOptions().estimator(loss::Estimator::Easy),          // SimCLR
};

// Every objective with one optimizer; the view-forward mode and the bucket mode alternate so that
// each combination is covered across the tests.
void check_objectives(const std::string& optimizer, double momentum, bool shift) {
  for (size_t i = 0; i < kObjectives.size(); ++i) {
    const bool odd = (i + (shift ? 1 : 0)) % 2 == 1;
    Config s{optimizer, momentum, kObjectives[i]};
    s.mode = odd ? ViewForward::Joint : ViewForward::PerView;
    s.overlap = !odd;
    SCOPED_TRACE(describe(s));
    expect_equivalent(s);
  }
}

TEST(Equivalence, SgdWithoutMomentumFloat64) { check_objectives("sgd", 0.0, false); }
TEST(Equivalence, SgdWithMomentumFloat64) { check_objectives("sgd", 0.9, true); }
TEST(Equivalence, AdamFloat64) { check_objectives("adam", 0.0, false); }

TEST(Equivalence, LarsFloat64) {
  Config s{"lars", 0.9, kObjectives[0]};
  SCOPED_TRACE(describe(s));
  expect_equivalent(s);
}

TEST(Equivalence, Float32AfterFiveSteps) {
  for (const char* optimizer : {"sgd", "adam"}) {
    Config s{optimizer, 0.9, kObjectives[0], torch::kFloat};
    SCOPED_TRACE(describe(s));
    expect_equivalent(s);
  }
}

TEST(Equivalence, PerRankBatchNormDiffers) {
  const int world = test::world_size();
  if (world == 1) GTEST_SKIP() << "one rank: per-rank and synchronised BatchNorm coincide";
  Config s{"sgd", 0.0, kObjectives[0]};
  s.sync_bn = false;
  dist::Communicator everyone;
  dist::Communicator alone(MPI_COMM_SELF);
  const Trace many = train(everyone, s, world);
  const Trace one = train(alone, s, world);
  EXPECT_GT(std::abs(many.losses[0] - one.losses[0]), 1e-6)
      << "per-rank BatchNorm normalises over B images, not W*B: the losses must differ";
}

}  // namespace
}  // namespace hcl::train
