// Optimizer construction, the LARS gradient transform, and the lr schedule.
#include "train/optim.h"

#include <cmath>

#include "core/check.h"
#include "train/foreach_optim.h"
#include "train/fused_optim.h"

namespace hcl::train {

void OptimizerOptions::validate() const {
  HCL_REQUIRE(std::isfinite(lr()) && lr() > 0, "learning rate must be > 0, got ", lr());
  HCL_REQUIRE(weight_decay() >= 0, "weight decay must be >= 0, got ", weight_decay());
  HCL_REQUIRE(momentum() >= 0 && momentum() < 1, "momentum must be in [0, 1), got ", momentum());
  HCL_REQUIRE(trust_coefficient() > 0, "LARS trust coefficient must be > 0, got ", trust_coefficient());
}

namespace {

bool use_fused(OptimizerKernels kernels, const std::vector<torch::Tensor>& params) {
  switch (kernels) {
    case OptimizerKernels::Foreach: return false;
    case OptimizerKernels::Fused: return true;
    case OptimizerKernels::Auto: break;
  }
  return fused_optimizers_available() && !params.empty() && params.front().is_cuda();
}

}  // namespace

Optimizer::Optimizer(torch::nn::Module& module, OptimizerOptions options) : options_(options), lr_(options.lr()) {
  options_.validate();
  std::vector<torch::Tensor> params;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) params.push_back(p);
  const bool fused = use_fused(options_.kernels(), params);
  if (options_.kind() == OptimizerKind::Adam) {
    const auto adam = torch::optim::AdamOptions(options_.lr()).weight_decay(options_.weight_decay());
    if (fused) {
      auto owned = std::make_unique<FusedAdam>(params, adam);
      fused_adam_ = owned.get();
      optimizer_ = std::move(owned);
    } else {
      optimizer_ = std::make_unique<ForeachAdam>(params, adam);
    }
    return;
  }
  // sgd; lars is SGD with momentum on rescaled gradients, whose weight decay lars_transform adds.
  // SimCLR excludes BatchNorm and bias parameters (the 1-d ones) from LARS.
  const bool lars = options_.kind() == OptimizerKind::Lars;
  if (lars)
    for (const auto& p : params)
      if (p.dim() > 1) adapted_.push_back(p);
  const auto sgd = torch::optim::SGDOptions(options_.lr())
                       .momentum(options_.momentum())
                       .weight_decay(lars ? 0.0 : options_.weight_decay());
  if (fused) {
    auto owned = std::make_unique<FusedSGD>(params, sgd);
    fused_sgd_ = owned.get();
    optimizer_ = std::move(owned);
  } else {
    optimizer_ = std::make_unique<ForeachSGD>(params, sgd);
  }
}

void Optimizer::zero_grad() { optimizer_->zero_grad(); }

void Optimizer::lars_transform() {
  torch::NoGradGuard no_grad;
  for (torch::Tensor& p : adapted_) {
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    if (options_.weight_decay() > 0) g.add_(p, options_.weight_decay());
    const torch::Tensor w_norm = p.norm(), g_norm = g.norm();
    // trust * |w| / |g + wd w|, or 1 where either norm is 0 (no host synchronisation).
    const torch::Tensor ratio = torch::where(w_norm.gt(0).logical_and(g_norm.gt(0)),
                                             options_.trust_coefficient() * w_norm / g_norm,
                                             torch::ones_like(w_norm));
    g.mul_(ratio);
  }
}

void Optimizer::step(const torch::Tensor& skip) {
  if (!adapted_.empty()) lars_transform();  // a skipped step's gradients are zeros: they stay zeros
  if (fused_adam_ != nullptr) return fused_adam_->step_unless(skip);
  if (fused_sgd_ != nullptr) return fused_sgd_->step_unless(skip);
  if (skip.defined()) {
    HCL_ASSERT(skip.numel() == 1 && skip.scalar_type() == torch::kFloat, "Optimizer: the skip flag must be "
               "one float");
    // On CPU the flag is host memory: reading it is what a CPU kernel does (no ATen op, no wait).
    const float flag = skip.is_cpu() ? *skip.data_ptr<float>() : skip.item<float>();
    if (flag != 0) return;
  }
  optimizer_->step();
}

void Optimizer::set_lr(double lr) {
  if (lr == lr_) return;
  lr_ = lr;
  if (fused_adam_ != nullptr) return fused_adam_->set_lr(lr);
  if (fused_sgd_ != nullptr) return fused_sgd_->set_lr(lr);
  for (auto& group : optimizer_->param_groups()) {
    if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&group.options())) adam->lr(lr);
    if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&group.options())) sgd->lr(lr);
  }
}

torch::optim::Optimizer& Optimizer::checkpoint_state() {
  if (fused_adam_ != nullptr) fused_adam_->sync_state_for_save();
  return *optimizer_;
}

void Optimizer::state_loaded() {
  if (fused_adam_ != nullptr) fused_adam_->state_loaded();
  if (fused_sgd_ != nullptr) fused_sgd_->state_loaded();
  // The learning rate comes from the schedule at the next step, not from the checkpoint.
  for (auto& group : optimizer_->param_groups()) {
    if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&group.options())) lr_ = adam->lr();
    if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&group.options())) lr_ = sgd->lr();
  }
}

double scheduled_lr(double base_lr, const ScheduleOptions& schedule, int64_t step) {
  if (schedule.warmup_steps() > 0 && step < schedule.warmup_steps())
    return base_lr * static_cast<double>(step + 1) / static_cast<double>(schedule.warmup_steps());
  if (schedule.kind() == LrSchedule::Constant) return base_lr;
  const double span = static_cast<double>(std::max<int64_t>(1, schedule.total_steps() - schedule.warmup_steps()));
  const double progress = std::min(1.0, static_cast<double>(step - schedule.warmup_steps()) / span);
  return base_lr * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace hcl::train
