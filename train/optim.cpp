// Optimizer construction, the LARS gradient transform, and the lr schedule.
#include "train/optim.h"

#include <cmath>

#include "core/check.h"
#include "train/foreach_optim.h"

namespace hcl::train {

void OptimizerOptions::validate() const {
  HCL_REQUIRE(std::isfinite(lr()) && lr() > 0, "learning rate must be > 0, got ", lr());
  HCL_REQUIRE(weight_decay() >= 0, "weight decay must be >= 0, got ", weight_decay());
  HCL_REQUIRE(momentum() >= 0 && momentum() < 1, "momentum must be in [0, 1), got ", momentum());
  HCL_REQUIRE(trust_coefficient() > 0, "LARS trust coefficient must be > 0, got ", trust_coefficient());
}

Optimizer::Optimizer(torch::nn::Module& module, OptimizerOptions options) : options_(options) {
  options_.validate();
  std::vector<torch::Tensor> params;
  for (const auto& p : module.parameters())
    if (p.requires_grad()) params.push_back(p);
  switch (options_.kind()) {
    case OptimizerKind::Adam:
      optimizer_ = std::make_unique<ForeachAdam>(
          params, torch::optim::AdamOptions(options_.lr()).weight_decay(options_.weight_decay()));
      break;
    case OptimizerKind::Sgd:
      optimizer_ = std::make_unique<ForeachSGD>(params, torch::optim::SGDOptions(options_.lr())
                                                            .momentum(options_.momentum())
                                                            .weight_decay(options_.weight_decay()));
      break;
    case OptimizerKind::Lars:
      // SimCLR excludes BatchNorm and bias parameters (the 1-d ones) from LARS.
      for (const auto& p : params)
        if (p.dim() > 1) adapted_.push_back(p);
      optimizer_ = std::make_unique<ForeachSGD>(
          params, torch::optim::SGDOptions(options_.lr()).momentum(options_.momentum()));
      break;
  }
  HCL_ASSERT(optimizer_ != nullptr, "optimizer ", static_cast<int>(options_.kind()), " not handled");
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

void Optimizer::step() {
  if (!adapted_.empty()) lars_transform();
  optimizer_->step();
}

void Optimizer::set_lr(double lr) {
  for (auto& group : optimizer_->param_groups()) {
    if (auto* adam = dynamic_cast<torch::optim::AdamOptions*>(&group.options())) adam->lr(lr);
    if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&group.options())) sgd->lr(lr);
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
