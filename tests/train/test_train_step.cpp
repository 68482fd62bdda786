// TrainStep's host reads, the CPU proxy for host synchronisation on a GPU: a steady-state step
// (after warm-up) reads nothing back from its tensors, with the finite check off or deciding on
// the device; deciding on the host reads exactly one value (the agreed skip decision). The two
// decisions train identically. Also: the phases that run() stamps on a PhaseTimer.
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "core/op_counts.h"
#include "tests/support/mpi_world.h"
#include "train/train_step.h"

namespace hcl::train {
namespace {

TrainStep small_step(bool finite_check, int64_t accumulate = 1, bool guard_on_device = true,
                     bool multi_rank_paths = false) {
  const auto build = [](const model::NormFactory& norm) {
    torch::manual_seed(5);
    return model::ContrastiveModel(
        model::ModelOptions()
            .encoder(model::EncoderOptions().arch(model::Arch::Small).in_channels(1).norm(norm))
            .head_hidden(32)
            .projection_dim(16));
  };
  return TrainStep(dist::Communicator(), build,
                   StepOptions()
                       .finite_check(finite_check)
                       .guard_on_device(guard_on_device)
                       .accumulate(accumulate)
                       .bucket_bytes(4096)
                       .multi_rank_paths_at_one_rank(multi_rank_paths)
                       .overlap(multi_rank_paths),  // the forced buckets reduced from their hooks
                   OptimizerOptions().kind(OptimizerKind::Adam), torch::kCPU);
}

// Steps 1-2 warm up (optimizer state, buffers); step 3 is observed.
int64_t reads_in_steady_step(TrainStep& step) {
  const auto objective = loss::ObjectiveOptions().check_values(false).with_stats(false);
  int64_t reads = -1;
  for (int64_t k = 1; k <= 3; ++k) {
    torch::manual_seed(100 + k * 10 + step.comm().rank());
    const torch::Tensor v1 = torch::randn({4, 1, 8, 8}), v2 = torch::randn({4, 1, 8, 8});
    if (k < 3) {
      step.run(v1, v2, objective, 1e-3, k);
    } else {
      reads = host_reads(count_ops([&] { step.run(v1, v2, objective, 1e-3, k); }));
    }
  }
  return reads;
}

TEST(TrainStep, SteadyStateStepMakesNoHostReads) {
  TrainStep step = small_step(/*finite_check=*/false);
  EXPECT_EQ(reads_in_steady_step(step), 0);
}

// The W > 1 paths forced at one rank (gradient buckets reduced from their hooks, SyncBatchNorm's
// synchronised path with its collectives) train as the plain one-rank step, and their steady step
// reads nothing on the host either: what a CUDA graph of them needs (scripts/gpu_check captures them
// on one GPU).
TEST(TrainStep, MultiRankPathsAtOneRankTrainAsThePlainStepWithoutHostReads) {
  HCL_ONLY_AT_RANKS(1);
  TrainStep forced = small_step(/*finite_check=*/true, 1, true, /*multi_rank_paths=*/true);
  TrainStep plain = small_step(/*finite_check=*/true);
  EXPECT_GT(forced.data_parallel().bucket_count(), 1);
  EXPECT_EQ(plain.data_parallel().bucket_count(), 0);
  // The averaged gradients each step, as the optimizer gets them (Adam would magnify the rounding
  // of near-zero gradients in the parameters).
  std::vector<torch::Tensor> seen[2];
  const auto observe = [](TrainStep& step, std::vector<torch::Tensor>& into) {
    step.set_gradient_observer([&step, &into] {
      into.clear();
      for (const auto& p : step.model()->parameters()) into.push_back(p.grad().clone());
    });
  };
  observe(forced, seen[0]);
  observe(plain, seen[1]);
  const auto objective = loss::ObjectiveOptions().check_values(false);
  for (int64_t k = 1; k <= 3; ++k) {
    torch::manual_seed(700 + k);
    const torch::Tensor v1 = torch::randn({4, 1, 8, 8}), v2 = torch::randn({4, 1, 8, 8});
    const double a = forced.run(v1, v2, objective, 1e-3, k).loss.item<double>();
    const double b = plain.run(v1, v2, objective, 1e-3, k).loss.item<double>();
    EXPECT_NEAR(a, b, 1e-5) << "step " << k;
    ASSERT_EQ(seen[0].size(), seen[1].size());
    for (size_t i = 0; i < seen[0].size(); ++i) {
      const double relative = ((seen[0][i] - seen[1][i]).norm() / seen[1][i].norm()).item<double>();
      EXPECT_LT(relative, 1e-4) << "step " << k << ", gradient " << i << " " << seen[1][i].sizes();
    }
  }
  forced.set_gradient_observer(nullptr);
  EXPECT_EQ(reads_in_steady_step(forced), 0);
}

TEST(TrainStep, FiniteCheckOnTheDeviceMakesNoHostReads) {
  TrainStep step = small_step(/*finite_check=*/true);
  EXPECT_EQ(reads_in_steady_step(step), 0);
}

TEST(TrainStep, FiniteCheckOnTheHostIsTheOnlyHostReadOfAStep) {
  TrainStep step = small_step(/*finite_check=*/true, 1, /*guard_on_device=*/false);
  EXPECT_EQ(reads_in_steady_step(step), 1);
}

// The graph-ready step (decision on the device, nothing read back) trains exactly as the step that
// decides on the host: the same parameters and buffers, bit for bit, after 5 steps with a
// NaN view on the last rank at steps 2 and 3 (skipped everywhere), with one and two micro-batches;
// the skips are reported once, one step late.
TEST(TrainStep, DecisionOnTheDeviceTrainsExactlyAsOnTheHost) {
  for (const int64_t accumulate : {1, 2}) {
    TrainStep host = small_step(true, accumulate, /*guard_on_device=*/false);
    TrainStep device = small_step(true, accumulate, /*guard_on_device=*/true);
    const auto objective = loss::ObjectiveOptions().check_values(false).with_stats(false);
    std::vector<int64_t> host_skips, device_skips;
    for (int64_t k = 1; k <= 5; ++k) {
      torch::manual_seed(1000 + k * 10 + host.comm().rank());
      const torch::Tensor v1 = torch::randn({4, 1, 8, 8}), v2 = torch::randn({4, 1, 8, 8});
      if ((k == 2 || k == 3) && host.comm().rank() == host.comm().world_size() - 1) v1[1].fill_(std::nan(""));
      for (const SkipRecord& s : host.run(v1, v2, objective, 1e-3, k).skips) host_skips.push_back(s.step);
      const StepResult out = device.run(v1, v2, objective, 1e-3, k);
      for (const SkipRecord& s : out.skips) device_skips.push_back(s.step);
      EXPECT_EQ(out.applied(), k != 2 && k != 3) << "step " << k;
    }
    for (const SkipRecord& s : device.settle()) device_skips.push_back(s.step);
    EXPECT_EQ(host_skips, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(device_skips, host_skips);
    EXPECT_EQ(device.guard().skipped(), 2);
    const auto hp = host.model()->parameters(), dp = device.model()->parameters();
    for (size_t i = 0; i < hp.size(); ++i) EXPECT_TRUE(torch::equal(hp[i], dp[i])) << "parameter " << i;
    const auto hb = host.model()->buffers(), db = device.model()->buffers();
    for (size_t i = 0; i < hb.size(); ++i) EXPECT_TRUE(torch::equal(hb[i], db[i])) << "buffer " << i;
  }
}

TEST(TrainStep, StampsEveryPhaseOnTheTimer) {
  TrainStep step = small_step(/*finite_check=*/true, /*accumulate=*/2);
  PhaseTimer timer(torch::kCPU);
  const auto objective = loss::ObjectiveOptions().check_values(false);
  timer.begin_step();
  timer.end_phase(Phase::Data);
  const StepResult out = step.run(torch::randn({4, 1, 8, 8}), torch::randn({4, 1, 8, 8}), objective, 1e-3, 1, &timer);
  timer.end_step();
  const WindowTiming w = timer.close_window();
  EXPECT_TRUE(out.applied());
  EXPECT_EQ(w.steps, 1);
  double phases = 0;
  for (const Phase p : {Phase::Forward, Phase::Objective, Phase::Backward}) {  // real work in each
    EXPECT_GT(w.device_ms_per_step(p), 0.0) << to_string(p);
  }
  for (int p = 0; p < kPhaseCount; ++p) phases += w.device_ms_per_step(static_cast<Phase>(p));
  EXPECT_LE(phases, w.host_ms_per_step() + 1e-6);  // on the CPU the phases tile the step
}

}  // namespace
}  // namespace hcl::train
