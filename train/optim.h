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

enum class OptimizerKind { Adam, Sgd, Lars };
enum class LrSchedule { Constant, Cosine };

struct OptimizerOptions {
  TORCH_ARG(OptimizerKind, kind) = OptimizerKind::Adam;
  TORCH_ARG(double, lr) = 1e-3;           // for lars: the base lr, scaled by global batch / 256
  TORCH_ARG(double, weight_decay) = 1e-6;
  TORCH_ARG(double, momentum) = 0.9;      // sgd, lars
  TORCH_ARG(double, trust_coefficient) = 1e-3;  // lars

 public:
  void validate() const;
};

// An optimizer over a module's parameters, updated with multi-tensor operations (ForeachAdam,
// ForeachSGD: LibTorch's arithmetic and state). LARS is SGD with momentum applied to gradients that
// lars_transform() rescaled first (SimCLR's formulation); step() does both.
class Optimizer {
 public:
  Optimizer(torch::nn::Module& module, OptimizerOptions options);
  void zero_grad();
  void step();
  void set_lr(double lr);
  torch::optim::Optimizer& torch_optimizer() { return *optimizer_; }
  const OptimizerOptions& options() const { return options_; }

 private:
  void lars_transform();

  OptimizerOptions options_;
  std::vector<torch::Tensor> adapted_;   // lars: weights with adaptation and weight decay
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
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
