// CUDA graphs of the training step. On a GPU (scripts/gpu_check runs these): steps replayed from
// the graph train as the eager steps do (a skipped non-finite step included), and a change of the
// objective's options is captured again; the W > 1 paths forced at one rank (gradient buckets and
// hooks, SyncBatchNorm's synchronised kernels) replay as plain eager steps; a failed capture falls
// back to eager steps and leaks nothing. Everywhere: where a graph is impossible, --cuda-graph on
// is refused naming why and auto runs eagerly.
#include <gtest/gtest.h>

#include <cmath>

#include "core/check.h"
#include "core/device.h"
#include "core/side_stream.h"
#include "tests/support/mpi_world.h"
#include "core/fault_injection.h"
#include "train/train_step.h"

namespace hcl::train {
namespace {

TrainStep small_step(CudaGraphMode graph, const torch::Device& device, bool multi_rank_paths = false,
                     OptimizerKind optimizer = OptimizerKind::Adam) {
  const auto build = [](const model::NormFactory& norm) {
    torch::manual_seed(5);
    return model::ContrastiveModel(model::ModelOptions()
                                       .encoder(model::EncoderOptions().arch(model::Arch::Small).in_channels(1).norm(norm))
                                       .head_hidden(32)
                                       .projection_dim(16));
  };
  return TrainStep(dist::Communicator(), build,
                   StepOptions()
                       .cuda_graph(graph)
                       .graph_warmup_steps(2)
                       .overlap(device.is_cuda())
                       .bucket_bytes(4096)
                       .multi_rank_paths_at_one_rank(multi_rank_paths),
                   OptimizerOptions().kind(optimizer), device);
}

// Both steps' models hold the same parameters (to the graph's rounding).
void expect_same_parameters(TrainStep& a, TrainStep& b) {
  const auto pa = a.model()->parameters(), pb = b.model()->parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_TRUE(torch::allclose(pa[i], pb[i], 1e-4, 1e-5))
        << "parameter " << i << ": max difference " << (pa[i] - pb[i]).abs().max().item<double>();
}

TEST(StepGraph, RefusedWhereImpossibleWithTheReason) {
  HCL_ONLY_AT_RANKS(1);
  try {
    small_step(CudaGraphMode::On, torch::kCPU);
    FAIL() << "expected hcl::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--cuda-graph on: not possible here: the device is the CPU"),
              std::string::npos)
        << e.what();
  }
  TrainStep step = small_step(CudaGraphMode::Auto, torch::kCPU);
  EXPECT_EQ(step.graph_refusal(), "the device is the CPU");
  const auto objective = loss::ObjectiveOptions().check_values(false);
  for (int64_t k = 1; k <= 4; ++k) step.run(torch::randn({4, 1, 8, 8}), torch::randn({4, 1, 8, 8}), objective, 1e-3, k);
  EXPECT_EQ(step.graph_counts().replays, 0);
  EXPECT_EQ(small_step(CudaGraphMode::Off, torch::kCPU).graph_refusal(), "off (--cuda-graph off)");
}

// Six steps with the graph (two eager, a capture, replays) against six eager steps on the same
// views; step 5 has a NaN view and is skipped by both; beta changes at step 6 (a second capture).
TEST(StepGraph, ReplaysTrainAsEagerStepsOnCuda) {
  HCL_ONLY_AT_RANKS(1);
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (scripts/gpu_check runs this on a GPU)";
  const torch::Device cuda(torch::kCUDA, 0);
  TrainStep graphed = small_step(CudaGraphMode::On, cuda);
  TrainStep eager = small_step(CudaGraphMode::Off, cuda);
  ASSERT_TRUE(graphed.optimizer().fused());
  for (int64_t k = 1; k <= 6; ++k) {
    torch::manual_seed(300 + k);
    torch::Tensor v1 = torch::randn({8, 1, 8, 8}, cuda), v2 = torch::randn({8, 1, 8, 8}, cuda);
    if (k == 5) v1[3].fill_(std::nan(""));
    const auto objective = loss::ObjectiveOptions().check_values(false).beta(k == 6 ? 0.5 : 1.0);
    const double lr = 1e-3 * (1 + 0.1 * static_cast<double>(k));
    const StepResult a = graphed.run(v1, v2, objective, lr, k);
    const StepResult b = eager.run(v1, v2, objective, lr, k);
    EXPECT_EQ(a.applied(), k != 5) << "step " << k;
    EXPECT_EQ(b.applied(), k != 5) << "step " << k;
    if (k != 5) {
      EXPECT_NEAR(a.loss.item<double>(), b.loss.item<double>(), 1e-4) << "step " << k;
    }
  }
  EXPECT_EQ(graphed.graph_counts().captures, 2);
  EXPECT_EQ(graphed.graph_counts().replays, 4);
  graphed.settle();
  EXPECT_EQ(graphed.guard().skipped(), 1);
  expect_same_parameters(graphed, eager);
}

// One GPU runs the code of many: the gradient buckets with their hooks and all-reduces, and
// SyncBatchNorm's fused kernels with their collectives, at one rank and inside the graph, train as
// the plain one-rank eager step (no buckets, LibTorch's batch_norm). Their kernels differ, so the
// two round differently; SGD (momentum, fused) keeps that a rounding difference in the parameters,
// where Adam would turn a near-zero gradient's rounding into a step of lr either way.
TEST(StepGraph, CudaGraphOfTheMultiRankPathsAtOneRankTrainsAsPlainEagerSteps) {
  HCL_ONLY_AT_RANKS(1);
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (scripts/gpu_check runs this on a GPU)";
  const torch::Device cuda(torch::kCUDA, 0);
  TrainStep graphed = small_step(CudaGraphMode::On, cuda, /*multi_rank_paths=*/true, OptimizerKind::Sgd);
  TrainStep plain = small_step(CudaGraphMode::Off, cuda, /*multi_rank_paths=*/false, OptimizerKind::Sgd);
  ASSERT_TRUE(graphed.optimizer().fused());
  ASSERT_GT(graphed.data_parallel().bucket_count(), 1);
  ASSERT_EQ(plain.data_parallel().bucket_count(), 0);
  const auto objective = loss::ObjectiveOptions().check_values(false);
  for (int64_t k = 1; k <= 6; ++k) {
    torch::manual_seed(400 + k);
    const torch::Tensor v1 = torch::randn({8, 1, 8, 8}, cuda), v2 = torch::randn({8, 1, 8, 8}, cuda);
    const double lr = 0.05;  // an SGD step large enough that a wrong gradient shows in the parameters
    const StepResult a = graphed.run(v1, v2, objective, lr, k);
    const StepResult b = plain.run(v1, v2, objective, lr, k);
    EXPECT_NEAR(a.loss.item<double>(), b.loss.item<double>(), 1e-4) << "step " << k;
  }
  EXPECT_EQ(graphed.graph_counts().captures, 1);
  EXPECT_EQ(graphed.graph_counts().replays, 4);
  expect_same_parameters(graphed, plain);
}

// A failed capture leaves the process clean. Every capture fails at cudaStreamEndCapture
// (HCL_FAULT=capture-fail); --cuda-graph auto says why and trains eagerly; the views, made on a side
// stream and handed over as the view pipeline does, are freed for reuse every step, so the memory
// the allocator holds stays flat over 50 steps (an allocator left in capture mode never frees a block
// that another stream used).
TEST(StepGraph, CudaAFailedCaptureFallsBackToEagerStepsAndLeaksNothing) {
  HCL_ONLY_AT_RANKS(1);
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (scripts/gpu_check runs this on a GPU)";
  const torch::Device cuda(torch::kCUDA, 0);
  const ScopedFaultPlan injected(parse_fault_plan("capture-fail"));
  TrainStep step = small_step(CudaGraphMode::Auto, cuda);
  SideStream side(cuda);
  const auto objective = loss::ObjectiveOptions().check_values(false);
  double held_at_step_10 = 0;
  for (int64_t k = 1; k <= 50; ++k) {
    torch::Tensor views;
    side.run([&] { views = torch::randn({16, 1, 8, 8}, cuda); });
    side.hand_over(views);
    const StepResult out = step.run(views.narrow(0, 0, 8), views.narrow(0, 8, 8), objective, 1e-3, k);
    EXPECT_TRUE(std::isfinite(out.loss.item<double>())) << "step " << k;
    if (k == 10) held_at_step_10 = device_memory_reserved_mib(cuda);
  }
  synchronize_device(cuda);
  EXPECT_LE(device_memory_reserved_mib(cuda), held_at_step_10 + 1.0);
  EXPECT_NE(step.graph_refusal().find("the capture failed"), std::string::npos) << step.graph_refusal();
  EXPECT_EQ(step.graph_counts().replays, 0);
}

}  // namespace
}  // namespace hcl::train
