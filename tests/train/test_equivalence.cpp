// The test that guards the whole trainer: W ranks x B images train exactly like one process with
// W*B images (different images on each rank): the same loss, the same gradients and, after K = 5
// optimizer steps, the same parameters, with SGD without and with momentum and with Adam, with
// SyncBatchNorm, for the hard, debiased and easy objectives, both view-forward modes, and both ways
// of running the gradient buckets. Per-rank BatchNorm is shown to differ. Both sides run the
// trainer's own step (train::TrainStep), so gradient accumulation (k micro-batches on both sides)
// and the finite-step guard (a step poisoned on one rank is skipped by all, as if it had never been
// taken) are covered too.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/support/golden.h"
#include "tests/support/mpi_world.h"
#include "train/train_step.h"

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
  int64_t accumulate = 1;
  ObjectiveComm objective_comm = ObjectiveComm::AllGather;
  int64_t poisoned_step = -1;  // W ranks: NaN in the last rank's first image at this step
  int64_t dropped_step = -1;   // one process: this step is not taken at all
};

struct Trace {
  std::vector<double> losses;              // every step (NaN where skipped or not taken)
  std::vector<bool> applied;               // whether the optimizer stepped
  std::vector<torch::Tensor> first_grads;  // step 0, every parameter
  std::vector<torch::Tensor> params;       // after kSteps
  std::vector<torch::Tensor> buffers;      // after kSteps (BatchNorm running statistics)
};

// The global batches of every step: (kSteps, W*B, 1, 8, 8) for each view, the same on all ranks.
std::pair<torch::Tensor, torch::Tensor> global_views(int world) {
  torch::manual_seed(1234);
  return {torch::randn({kSteps, world * kPerRank, 1, 8, 8}, torch::kDouble),
          torch::randn({kSteps, world * kPerRank, 1, 8, 8}, torch::kDouble)};
}

// This process's images of one step's global batch (W*B images). Rank r takes block r of B images,
// and its micro-batch m is the m-th slice of B/k images of that block. One process standing in for
// W ranks takes all of them in micro-batch-major order, so that its micro-batch m holds exactly the
// images of the ranks' micro-batches m (each micro-batch is its own global objective).
torch::Tensor local_images(const torch::Tensor& global, const dist::Communicator& comm, int world, int64_t k) {
  const int64_t b = global.size(0) / world;
  if (comm.world_size() == world) return global.narrow(0, comm.rank() * b, b);
  std::vector<int64_t> blocks = {world, k, b / k};
  for (int64_t d = 1; d < global.dim(); ++d) blocks.push_back(global.size(d));
  return global.reshape(blocks).transpose(0, 1).reshape(global.sizes());
}

Trace train(MPI_Comm ranks, const Config& s, int world) {
  const auto [view1, view2] = global_views(world);
  const double lr = s.optimizer == "adam" ? 1e-3 : 0.05;
  const auto build = [&](const model::NormFactory& norm) {
    torch::manual_seed(99);  // identical initialisation in both runs
    model::ContrastiveModel net(
        model::ModelOptions()
            .encoder(model::EncoderOptions().arch(model::Arch::Small).in_channels(1).norm(norm))
            .head_hidden(32)
            .projection_dim(16));
    net->to(s.dtype);
    return net;
  };
  TrainStep step(dist::Communicator(ranks), build,
                 StepOptions()
                     .accumulate(s.accumulate)
                     .view_forward(s.mode)
                     .sync_bn(s.sync_bn)
                     .objective_comm(s.objective_comm)
                     .bucket_bytes(4096)
                     .overlap(s.overlap),
                 OptimizerOptions()
                     .kind(parse<OptimizerKind>("optimizer", s.optimizer))
                     .lr(lr)
                     .momentum(s.momentum)
                     .weight_decay(1e-4),
                 torch::kCPU);
  Trace trace;
  step.set_gradient_observer([&] {
    if (trace.first_grads.empty())
      for (const auto& p : step.model()->parameters()) trace.first_grads.push_back(p.grad().clone());
  });
  dist::Communicator& comm = step.comm();
  for (int64_t k = 0; k < kSteps; ++k) {
    if (k == s.dropped_step) {
      trace.losses.push_back(std::numeric_limits<double>::quiet_NaN());
      trace.applied.push_back(false);
      continue;
    }
    const torch::Tensor v1 = local_images(view1[k], comm, world, s.accumulate).to(s.dtype);
    const torch::Tensor v2 = local_images(view2[k], comm, world, s.accumulate).to(s.dtype);
    if (k == s.poisoned_step && comm.rank() == comm.world_size() - 1) v1[0].fill_(std::nan(""));
    const StepResult out = step.run(v1, v2, s.objective, lr, k + 1);
    torch::Tensor loss = out.loss.reshape({1}).to(torch::kDouble);
    comm.all_reduce(loss, dist::ReduceOp::Avg);
    trace.losses.push_back(loss.item<double>());
    trace.applied.push_back(out.applied());
  }
  for (const auto& p : step.model()->parameters()) trace.params.push_back(p.detach().clone());
  for (const auto& b : step.model()->buffers()) trace.buffers.push_back(b.detach().clone());
  return trace;
}

void expect_equivalent(const Config& s) {
  const int world = test::world_size();
  const Trace many = train(MPI_COMM_WORLD, s, world);  // W ranks x B images
  const Trace one = train(MPI_COMM_SELF, s, world);    // 1 process x W*B images
  const bool wide = s.dtype == torch::kDouble;
  const double rtol = wide ? 1e-9 : 1e-4, atol = wide ? 1e-13 : 1e-6;
  for (int64_t k = 0; k < kSteps; ++k) {
    EXPECT_TRUE(many.applied[k] && one.applied[k]) << "step " << k << " skipped";
    EXPECT_TRUE(test::close(torch::tensor(many.losses[k], torch::kDouble), torch::tensor(one.losses[k], torch::kDouble), rtol))
        << "loss at step " << k;
  }
  ASSERT_EQ(many.params.size(), one.params.size());
  ASSERT_EQ(many.first_grads.size(), many.params.size());
  ASSERT_EQ(one.first_grads.size(), one.params.size());
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
         std::string(name_of(s.objective.estimator())) + " beta " + std::to_string(s.objective.beta()) + " " +
         name_of(s.mode) + (s.overlap ? " overlap" : " after-backward") + " " + c10::toString(s.dtype) +
         " accumulate " + std::to_string(s.accumulate) + " " + name_of(s.objective_comm);
}

const std::vector<loss::ObjectiveOptions> kObjectives = {
    loss::ObjectiveOptions(),                                           // hard
    loss::ObjectiveOptions().beta(0.0),                                 // debiased
    loss::ObjectiveOptions().estimator(loss::Estimator::Easy),          // SimCLR
};

// Every objective with one optimizer; the view-forward mode and the bucket mode alternate so that
// each combination is covered across the tests.
void check_objectives(const std::string& optimizer, double momentum, bool shift,
                      ObjectiveComm form = ObjectiveComm::AllGather) {
  for (size_t i = 0; i < kObjectives.size(); ++i) {
    const bool odd = (i + (shift ? 1 : 0)) % 2 == 1;
    Config s{optimizer, momentum, kObjectives[i]};
    s.objective_comm = form;
    s.mode = odd ? ViewForward::Joint : ViewForward::PerView;
    s.overlap = !odd;
    SCOPED_TRACE(describe(s));
    expect_equivalent(s);
  }
}

TEST(Equivalence, SgdWithoutMomentumFloat64) { check_objectives("sgd", 0.0, false); }
TEST(Equivalence, SgdWithMomentumFloat64) { check_objectives("sgd", 0.9, true); }
TEST(Equivalence, AdamFloat64) { check_objectives("adam", 0.0, false); }

// The ring form of the objective (train/ring_objective.h) trains exactly like the all-gather form.
TEST(Equivalence, RingSgdWithoutMomentumFloat64) { check_objectives("sgd", 0.0, false, ObjectiveComm::Ring); }
TEST(Equivalence, RingAdamFloat64) { check_objectives("adam", 0.0, true, ObjectiveComm::Ring); }
TEST(Equivalence, RingKeepSgdFloat64) { check_objectives("sgd", 0.9, false, ObjectiveComm::RingKeep); }

TEST(Equivalence, RingFloat32AndTwoMicroBatches) {
  Config s{"adam", 0.9, loss::ObjectiveOptions(kObjectives[0]).column_chunk(3), torch::kFloat};
  s.objective_comm = ObjectiveComm::Ring;
  s.accumulate = 2;
  SCOPED_TRACE(describe(s));
  expect_equivalent(s);
}

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
  const Trace many = train(MPI_COMM_WORLD, s, world);
  const Trace one = train(MPI_COMM_SELF, s, world);
  EXPECT_GT(std::abs(many.losses[0] - one.losses[0]), 1e-6)
      << "per-rank BatchNorm normalises over B images, not W*B: the losses must differ";
}

// k = 2 micro-batches of B/2 images per rank train like one process with k = 2 micro-batches of
// W*B/2 images (the same images in each): gradients summed over micro-batches, reduced once.
TEST(Equivalence, AccumulateTwoMicroBatches) {
  for (const char* optimizer : {"sgd", "adam"}) {
    for (const ViewForward mode : {ViewForward::PerView, ViewForward::Joint}) {
      Config s{optimizer, 0.0, kObjectives[0]};
      s.mode = mode;
      s.overlap = mode == ViewForward::PerView;
      s.accumulate = 2;
      SCOPED_TRACE(describe(s));
      expect_equivalent(s);
    }
  }
}

// A NaN in one image of one rank at step 2: the finite check skips that step on every rank
// (parameters, optimizer state and BatchNorm statistics untouched), so W ranks end exactly where
// one process ends that never took step 2.
TEST(Equivalence, StepSkippedByTheGuardIsAsIfNotTaken) {
  const int world = test::world_size();
  for (const char* optimizer : {"sgd", "adam"}) {
    Config s{optimizer, 0.9, loss::ObjectiveOptions(kObjectives[0]).check_values(false)};
    s.poisoned_step = 2;
    s.dropped_step = 2;
    SCOPED_TRACE(describe(s) + " step 2 skipped");
    Config poisoned = s, dropped = s;
    poisoned.dropped_step = -1;
    dropped.poisoned_step = -1;
    const Trace many = train(MPI_COMM_WORLD, poisoned, world);
    const Trace one = train(MPI_COMM_SELF, dropped, world);
    EXPECT_EQ(many.applied, (std::vector<bool>{true, true, false, true, true}));
    EXPECT_TRUE(std::isnan(many.losses[2])) << "the poisoned step's loss";
    for (int64_t k : {0, 1, 3, 4})
      EXPECT_TRUE(test::close(torch::tensor(many.losses[k], torch::kDouble), torch::tensor(one.losses[k], torch::kDouble), 1e-9))
          << "loss at step " << k;
    for (size_t i = 0; i < many.params.size(); ++i)
      EXPECT_TRUE(test::close(many.params[i], one.params[i], 1e-9, 1e-13)) << "parameter " << i << " after 5 steps";
    ASSERT_EQ(many.buffers.size(), one.buffers.size());
    for (size_t i = 0; i < many.buffers.size(); ++i)
      EXPECT_TRUE(test::close(many.buffers[i].to(torch::kDouble), one.buffers[i].to(torch::kDouble), 1e-9, 1e-13))
          << "buffer " << i << " after 5 steps";
  }
}

}  // namespace
}  // namespace hcl::train
