// Adam and SGD that update all parameters with multi-tensor (foreach) operations: a handful of
// kernels per step instead of several per parameter tensor (on CUDA the foreach kernels fuse over
// tensors; on CPU they loop). Same arithmetic, options, state and serialisation as LibTorch's
// torch::optim::Adam and torch::optim::SGD, of which they are subclasses: results are identical
// (tested) and checkpoints move freely between them.
#pragma once

#include <torch/torch.h>

#include <sstream>
#include <string>
#include <type_traits>

namespace hcl::train {

// The key of a parameter's entry in an optimizer's state map (`Map`: decltype of the optimizer's
// state_): LibTorch keys it by the parameter's TensorImpl, as a string in 1.x and as the pointer
// itself in newer versions.
template <typename Map>
typename Map::key_type state_key(const torch::Tensor& p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

class ForeachAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  // Throws hcl::Error for amsgrad or sparse gradients (not supported).
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class ForeachSGD : public torch::optim::SGD {
 public:
  using torch::optim::SGD::SGD;
  // Throws hcl::Error for sparse gradients (not supported).
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace hcl::train
