// The foreach optimizers equal LibTorch's own, bit for bit, over several steps with weight decay,
// momentum (plain and Nesterov), several dtypes, and a parameter that misses its gradient on some
// steps; their state round-trips through LibTorch's serialisation into the other class.
#include <gtest/gtest.h>

#include "core/check.h"
#include "tests/support/mpi_world.h"
#include "train/foreach_optim.h"
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

}  // namespace
}  // namespace hcl::train
