// The foreach optimizers equal LibTorch's own, bit for bit, over several steps with weight decay,
// momentum (plain and Nesterov), several dtypes, and a parameter that misses its gradient on some
// steps; their state round-trips through LibTorch's serialisation into the other class. The fused
// optimizers (LibTorch 2.4+; here on their CPU kernels) agree with them to rounding, skip on the
// device flag without changing anything, and their checkpoints load into the others both ways.
#include <gtest/gtest.h>

#include "core/check.h"
#include "tests/support/mpi_world.h"
#include "core/torch_compat.h"
#include "tests/support/tiny_net.h"
#include "train/foreach_optim.h"
#include "train/fused_optim.h"
#include "train/optim.h"

namespace hcl::train {
namespace {

std::vector<torch::Tensor> make_params(torch::ScalarType dtype) {
  torch::manual_seed(3);
  std::vector<torch::Tensor> params;
  for (const auto& shape : std::vector<std::vector<int64_t>>{{8, 4, 3, 3}, {8}, {5, 7}, {1}})
    params.push_back(torch::randn(shape, torch::TensorOptions().dtype(dtype)).requires_grad_(true));
  return params;
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone().requires_grad_(true));
  return out;
}

// The same gradients into both parameter sets; parameter 1 gets none on step 2.
void set_grads(std::vector<torch::Tensor>& a, std::vector<torch::Tensor>& b, int step) {
  torch::manual_seed(100 + step);
  for (size_t i = 0; i < a.size(); ++i) {
    if (i == 1 && step == 2) {
      a[i].mutable_grad() = torch::Tensor();
      b[i].mutable_grad() = torch::Tensor();
      continue;
    }
    const torch::Tensor g = torch::randn_like(a[i]) * (1 + static_cast<double>(i));
    a[i].mutable_grad() = g.clone();
    b[i].mutable_grad() = g.clone();
  }
}

void expect_identical(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

template <typename Ours, typename Theirs, typename Options>
void compare(const Options& options, torch::ScalarType dtype) {
  auto ours_params = make_params(dtype), theirs_params = clones(ours_params);
  Ours ours(ours_params, options);
  Theirs theirs(theirs_params, options);
  for (int step = 0; step < 5; ++step) {
    set_grads(ours_params, theirs_params, step);
    ours.step();
    theirs.step();
    expect_identical(ours_params, theirs_params);
  }
  // State saved by ours loads into theirs (and back), and both continue identically.
  std::stringstream buffer;
  {
    torch::serialize::OutputArchive out;
    ours.save(out);
    out.save_to(buffer);
  }
  auto restored_params = clones(ours_params);
  Theirs restored(restored_params, options);
  torch::serialize::InputArchive in;
  in.load_from(buffer);
  restored.load(in);
  set_grads(ours_params, restored_params, 7);
  ours.step();
  restored.step();
  expect_identical(ours_params, restored_params);
}

TEST(ForeachOptim, AdamEqualsLibTorch) {
  HCL_ONLY_AT_RANKS(1);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    compare<ForeachAdam, torch::optim::Adam>(torch::optim::AdamOptions(1e-2).weight_decay(1e-3), dtype);
    compare<ForeachAdam, torch::optim::Adam>(torch::optim::AdamOptions(3e-3).betas({0.8, 0.95}).eps(1e-6), dtype);
  }
}

TEST(ForeachOptim, SgdEqualsLibTorch) {
  HCL_ONLY_AT_RANKS(1);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    compare<ForeachSGD, torch::optim::SGD>(torch::optim::SGDOptions(0.1), dtype);
    compare<ForeachSGD, torch::optim::SGD>(torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-4), dtype);
    compare<ForeachSGD, torch::optim::SGD>(
        torch::optim::SGDOptions(0.05).momentum(0.9).dampening(0.1).weight_decay(1e-4), dtype);
    compare<ForeachSGD, torch::optim::SGD>(torch::optim::SGDOptions(0.05).momentum(0.9).nesterov(true), dtype);
  }
}

TEST(ForeachOptim, UnsupportedOptionsAreRefused) {
  HCL_ONLY_AT_RANKS(1);
  auto params = make_params(torch::kFloat);
  ForeachAdam adam(params, torch::optim::AdamOptions(1e-3).amsgrad(true));
  for (auto& p : params) p.mutable_grad() = torch::ones_like(p);
  EXPECT_THROW(adam.step(), Error);
}

// The skip flag of the foreach path: 1 leaves parameters and state as they are.
TEST(Optimizer, ForeachSkipsOnTheFlag) {
  HCL_ONLY_AT_RANKS(1);
  test::TinyNet net;
  Optimizer optimizer(net, OptimizerOptions().kind(OptimizerKind::Adam).kernels(OptimizerKernels::Foreach));
  EXPECT_FALSE(optimizer.fused());
  for (auto& p : net.parameters()) p.mutable_grad() = torch::ones_like(p);
  const torch::Tensor before = net.linear->weight.detach().clone();
  optimizer.step(torch::ones({1}));
  EXPECT_TRUE(torch::equal(net.linear->weight, before));
  optimizer.step(torch::zeros({1}));
  EXPECT_FALSE(torch::equal(net.linear->weight, before));
}

#if HCL_TORCH_HAS_FUSED_OPTIMIZERS

std::vector<torch::Tensor> detached(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
}

void expect_close(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b, const char* what) {
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-7)) << what << " " << i << ": max difference "
                                                          << (a[i] - b[i]).abs().max().item<double>();
}

// Optimizer with fused kernels against foreach kernels on the same module and gradients (one
// parameter without a gradient at step 2), then the checkpoint of each loaded into the other.
void fused_against_foreach(const OptimizerOptions& options, const torch::Device& device = torch::kCPU) {
  test::TinyNet fused_net, foreach_net;
  fused_net.to(device);
  foreach_net.to(device);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < fused_net.parameters().size(); ++i)
      foreach_net.parameters()[i].copy_(fused_net.parameters()[i]);
  }
  Optimizer fused(fused_net, OptimizerOptions(options).kernels(OptimizerKernels::Fused));
  Optimizer foreach(foreach_net, OptimizerOptions(options).kernels(OptimizerKernels::Foreach));
  ASSERT_TRUE(fused.fused());
  const auto grads_for = [](test::TinyNet& net, int step) {
    torch::manual_seed(50 + step);
    for (auto& p : net.parameters()) p.mutable_grad() = torch::randn_like(p);
    if (step == 2) net.linear->bias.mutable_grad() = torch::Tensor();
  };
  for (int step = 0; step < 5; ++step) {
    const double lr = options.lr() * (1 + 0.1 * step);  // a schedule
    fused.set_lr(lr);
    foreach.set_lr(lr);
    grads_for(fused_net, step);
    grads_for(foreach_net, step);
    fused.step();
    foreach.step();
    expect_close(fused_net.parameters(), foreach_net.parameters(), "parameter");
  }
  // Each one's checkpoint into the other, then one more step each: still together.
  std::stringstream fused_saved, foreach_saved;
  for (auto [optimizer, buffer] : {std::pair{&fused, &fused_saved}, std::pair{&foreach, &foreach_saved}}) {
    torch::serialize::OutputArchive out;
    optimizer->checkpoint_state().save(out);
    out.save_to(*buffer);
  }
  for (auto [optimizer, buffer] : {std::pair{&fused, &foreach_saved}, std::pair{&foreach, &fused_saved}}) {
    torch::serialize::InputArchive in;
    in.load_from(*buffer);
    optimizer->checkpoint_state().load(in);
    optimizer->state_loaded();
  }
  const auto params_before = detached(fused_net.parameters());
  grads_for(fused_net, 9);
  grads_for(foreach_net, 9);
  fused.step();
  foreach.step();
  expect_close(fused_net.parameters(), foreach_net.parameters(), "parameter after the exchange");
  EXPECT_FALSE(torch::equal(fused_net.linear->weight, params_before[0]));
}

TEST(FusedOptim, AdamAgreesWithForeachAndExchangesCheckpoints) {
  HCL_ONLY_AT_RANKS(1);
  fused_against_foreach(OptimizerOptions().kind(OptimizerKind::Adam).lr(1e-2).weight_decay(1e-3));
}

TEST(FusedOptim, SgdAndLarsAgreeWithForeachAndExchangeCheckpoints) {
  HCL_ONLY_AT_RANKS(1);
  fused_against_foreach(OptimizerOptions().kind(OptimizerKind::Sgd).lr(0.1).momentum(0.9).weight_decay(1e-4));
  fused_against_foreach(OptimizerOptions().kind(OptimizerKind::Sgd).lr(0.1).momentum(0.0));
  fused_against_foreach(OptimizerOptions().kind(OptimizerKind::Lars).lr(0.5).momentum(0.9).weight_decay(1e-4));
}

TEST(FusedOptim, AgreeWithForeachOnCuda) {
  HCL_ONLY_AT_RANKS(1);
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (scripts/gpu_check runs this on a GPU)";
  const torch::Device cuda(torch::kCUDA, 0);
  fused_against_foreach(OptimizerOptions().kind(OptimizerKind::Adam).lr(1e-2).weight_decay(1e-3), cuda);
  fused_against_foreach(OptimizerOptions().kind(OptimizerKind::Lars).lr(0.5).momentum(0.9).weight_decay(1e-4), cuda);
  test::TinyNet net;
  net.to(cuda);
  EXPECT_TRUE(Optimizer(net, OptimizerOptions()).fused()) << "auto picks the fused kernels on CUDA";
}

// A step with the flag at 1 changes nothing: parameters, moments, step counts (the next applied
// step's bias correction is that of the step after the last applied one).
TEST(FusedOptim, SkipFlagChangesNothing) {
  HCL_ONLY_AT_RANKS(1);
  test::TinyNet net, reference;
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < net.parameters().size(); ++i) reference.parameters()[i].copy_(net.parameters()[i]);
  }
  Optimizer fused(net, OptimizerOptions().kind(OptimizerKind::Adam).lr(1e-2).kernels(OptimizerKernels::Fused));
  Optimizer plain(reference, OptimizerOptions().kind(OptimizerKind::Adam).lr(1e-2).kernels(OptimizerKernels::Fused));
  for (int step = 0; step < 4; ++step) {
    torch::manual_seed(70 + step);
    for (size_t i = 0; i < net.parameters().size(); ++i) {
      const torch::Tensor g = torch::randn_like(net.parameters()[i]);
      net.parameters()[i].mutable_grad() = g.clone();
      reference.parameters()[i].mutable_grad() = g.clone();
    }
    const auto before = detached(net.parameters());
    if (step == 1) {
      fused.step(torch::ones({1}));  // skipped: the reference does not step at all
      for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(net.parameters()[i], before[i]));
      continue;
    }
    fused.step(torch::zeros({1}));
    plain.step();
    for (size_t i = 0; i < before.size(); ++i)
      EXPECT_TRUE(torch::equal(net.parameters()[i], reference.parameters()[i])) << "step " << step << " " << i;
  }
}

#else

TEST(FusedOptim, UnavailableBeforeLibTorch24SaysSo) {
  HCL_ONLY_AT_RANKS(1);
  test::TinyNet net;
  try {
    Optimizer fused(net, OptimizerOptions().kernels(OptimizerKernels::Fused));
    FAIL() << "expected hcl::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("LibTorch 2.4 or later"), std::string::npos) << e.what();
  }
  Optimizer automatic(net, OptimizerOptions());  // Auto picks foreach here
  EXPECT_FALSE(automatic.fused());
}

#endif

}  // namespace
}  // namespace hcl::train
