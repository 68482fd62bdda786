// Adam and SGD that update all parameters with multi-tensor (foreach) operations: a handful of
// kernels per step instead of several per parameter tensor (on CUDA the foreach kernels fuse over
// tensors; on CPU they loop). Same arithmetic, options, state and serialisation as LibTorch's
// torch::optim::Adam and torch::optim::SGD, of which they are subclasses: results are identical
// (tested) and checkpoints move freely between them.
#pragma once

#include <torch/torch.h>

#include <memory>
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

// A parameter's Adam state in `state` (an optimizer's state_), made (step 0, zero moments of the
// parameter's shape and layout) if it has none yet.
template <typename Map>
torch::optim::AdamParamState& adam_state_of(Map& state, const torch::Tensor& p) {
  auto key = state_key<Map>(p);
  auto found = state.find(key);
  if (found == state.end()) {
    auto fresh = std::make_unique<torch::optim::AdamParamState>();
    fresh->step(0);
    fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    found = state.emplace(key, std::move(fresh)).first;
  }
  return static_cast<torch::optim::AdamParamState&>(*found->second);
}

// The loss of an optimizer step's closure (with gradients on), or an undefined tensor without one.
torch::Tensor evaluate_closure(const torch::optim::Optimizer::LossClosure& closure);

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
