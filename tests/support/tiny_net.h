// A two-layer module with a BatchNorm (weights, biases and running buffers), for the train/ tests
// that need a module but not a contrastive model: the step guard and the checkpoint round trip.
#pragma once

#include <torch/torch.h>

namespace hcl::test {

struct TinyNet : torch::nn::Module {
  TinyNet() {
    linear = register_module("linear", torch::nn::Linear(4, 3));
    norm = register_module("norm", torch::nn::BatchNorm1d(3));
  }
  torch::Tensor forward(const torch::Tensor& x) { return norm(linear(x)); }
  torch::nn::Linear linear{nullptr};
  torch::nn::BatchNorm1d norm{nullptr};
};

}  // namespace hcl::test
