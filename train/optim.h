// Optimizers and learning-rate schedules: Adam (the reference: lr 1e-3, weight decay 1e-6), SGD
// with momentum, and LARS as SimCLR uses it (momentum 0.9, trust coefficient 0.001, BatchNorm and
// bias parameters excluded from adaptation and weight decay), with linear warm-up and cosine decay.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/named_enum.h"

namespace hcl::train {

// Which kernels update the parameters: LibTorch's fused ones (train/fused_optim.h) on CUDA where
// this LibTorch has them, the foreach ones (train/foreach_optim.h) elsewhere; or one forced.
enum class OptimizerKernels { Auto, Foreach, Fused };

enum class OptimizerKind { Adam, Sgd, Lars };
enum class LrSchedule { Constant, Cosine };

struct OptimizerOptions {
  TORCH_ARG(OptimizerKind, kind) = OptimizerKind::Adam;
  TORCH_ARG(double, lr) = 1e-3;           // for lars: the base lr, scaled by global batch / 256
  TORCH_ARG(double, weight_decay) = 1e-6;
  TORCH_ARG(double, momentum) = 0.9;      // sgd, lars
  TORCH_ARG(double, trust_coefficient) = 1e-3;  // lars
  TORCH_ARG(OptimizerKernels, kernels) = OptimizerKernels::Auto;

 public:
  void validate() const;
};

class FusedAdam;
class FusedSGD;

// An optimizer over a module's parameters, updated with multi-tensor kernels: fused (FusedAdam,
// FusedSGD) or foreach (ForeachAdam, ForeachSGD), both with LibTorch's state layout. LARS is SGD with
// momentum applied to gradients that lars_transform() rescaled first (SimCLR's formulation); step()
// does both.
class Optimizer {
 public:
  Optimizer(torch::nn::Module& module, OptimizerOptions options);
  void zero_grad();
  // One update. `skip`: undefined, or a one-element float tensor on the parameters' device holding
  // 0 (apply) or 1 (leave parameters, state and step counts as they are): the finite guard's agreed
  // decision. The fused kernels read it on the device, so the step has no host read; the foreach
  // path reads it on the host (on CPU a plain memory read; on CUDA one synchronisation).
  void step(const torch::Tensor& skip = {});
  // The learning rate of the next steps. Fused: also a device scalar, written by a kernel, so call
  // it outside CUDA-graph capture (and only when the value changes, it launches nothing otherwise).
  void set_lr(double lr);
  bool fused() const { return fused_adam_ != nullptr || fused_sgd_ != nullptr; }
  // LibTorch's optimizer with all of its state current (the fused path's device step counts copied
  // in: one host read). Save it into checkpoints; after loading into it, call state_loaded().
  torch::optim::Optimizer& checkpoint_state();
  void state_loaded();
  const OptimizerOptions& options() const { return options_; }

 private:
  void lars_transform();

  OptimizerOptions options_;
  std::vector<torch::Tensor> adapted_;   // lars: weights with adaptation and weight decay
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  FusedAdam* fused_adam_ = nullptr;  // optimizer_ itself when it is fused
  FusedSGD* fused_sgd_ = nullptr;
  double lr_ = 0;
};

struct ScheduleOptions {
  TORCH_ARG(LrSchedule, kind) = LrSchedule::Cosine;
  TORCH_ARG(int64_t, warmup_steps) = 0;
  TORCH_ARG(int64_t, total_steps) = 1;
};

// Learning rate at a 0-based step: linear warm-up from base/warmup to base, then constant or a
// cosine decay to 0 at total_steps.
double scheduled_lr(double base_lr, const ScheduleOptions& schedule, int64_t step);

}  // namespace hcl::train

template <>
struct hcl::EnumNames<hcl::train::OptimizerKind> {
  static constexpr NamedValue<train::OptimizerKind> table[] = {
      {train::OptimizerKind::Adam, "adam"},
      {train::OptimizerKind::Sgd, "sgd", "momentum"},
      {train::OptimizerKind::Lars, "lars", "lr x global batch / 256"},
  };
};

template <>
struct hcl::EnumNames<hcl::train::LrSchedule> {
  static constexpr NamedValue<train::LrSchedule> table[] = {
      {train::LrSchedule::Constant, "constant"},
      {train::LrSchedule::Cosine, "cosine", "after warm-up"},
  };
};
