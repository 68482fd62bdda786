// The foreach forms of LibTorch's Adam and SGD steps: the same operations in the same order, on
// lists of tensors. Parameters whose step counts differ (one that got no gradient on some step)
// are updated in separate lists, each with its own bias correction.
#include "train/foreach_optim.h"

#include <cmath>
#include <map>

#include "core/check.h"

namespace hcl::train {
namespace {

void require_dense(const torch::Tensor& grad, const char* optimizer) {
  HCL_REQUIRE(!grad.is_sparse(), optimizer, ": sparse gradients are not supported");
}

}  // namespace

torch::Tensor evaluate_closure(const torch::optim::Optimizer::LossClosure& closure) {
  if (!closure) return {};
  torch::AutoGradMode enable_grad(true);
  return closure();
}

torch::Tensor ForeachAdam::step(LossClosure closure) {
  const torch::Tensor loss = evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    auto& options = static_cast<torch::optim::AdamOptions&>(group.options());
    HCL_REQUIRE(!options.amsgrad(), "ForeachAdam: amsgrad is not supported");
    const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
    struct Lists {
      std::vector<torch::Tensor> params, grads, exp_avg, exp_avg_sq;
    };
    std::map<int64_t, Lists> by_step;  // parameters grouped by their step count after this step
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      require_dense(p.grad(), "ForeachAdam");
      auto& state = adam_state_of(state_, p);
      state.step(state.step() + 1);
      Lists& lists = by_step[state.step()];
      lists.params.push_back(p);
      lists.grads.push_back(p.grad());
      lists.exp_avg.push_back(state.exp_avg());
      lists.exp_avg_sq.push_back(state.exp_avg_sq());
    }
    for (auto& [step, l] : by_step) {
      const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
      const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step));
      std::vector<torch::Tensor> grads = l.grads;
      if (options.weight_decay() != 0) grads = at::_foreach_add(l.grads, l.params, options.weight_decay());
      at::_foreach_mul_(l.exp_avg, beta1);
      at::_foreach_add_(l.exp_avg, grads, 1 - beta1);
      at::_foreach_mul_(l.exp_avg_sq, beta2);
      at::_foreach_addcmul_(l.exp_avg_sq, grads, grads, 1 - beta2);
      std::vector<torch::Tensor> denom = at::_foreach_sqrt(l.exp_avg_sq);
      at::_foreach_div_(denom, std::sqrt(bias_correction2));
      at::_foreach_add_(denom, options.eps());
      at::_foreach_addcdiv_(l.params, l.exp_avg, denom, -options.lr() / bias_correction1);
    }
  }
  return loss;
}

torch::Tensor ForeachSGD::step(LossClosure closure) {
  const torch::Tensor loss = evaluate_closure(closure);
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    auto& options = static_cast<torch::optim::SGDOptions&>(group.options());
    std::vector<torch::Tensor> params, grads;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      require_dense(p.grad(), "ForeachSGD");
      params.push_back(p);
      grads.push_back(p.grad());
    }
    if (params.empty()) continue;
    std::vector<torch::Tensor> updates = grads;
    if (options.weight_decay() != 0) updates = at::_foreach_add(grads, params, options.weight_decay());
    if (options.momentum() != 0) {
      // New buffers start as a copy of the update; existing ones decay and accumulate it.
      std::vector<torch::Tensor> existing, existing_updates;
      for (size_t i = 0; i < params.size(); ++i) {
        auto key = state_key<decltype(state_)>(params[i]);
        auto found = state_.find(key);
        if (found == state_.end()) {
          auto state = std::make_unique<torch::optim::SGDParamState>();
          state->momentum_buffer(torch::clone(updates[i]).detach());
          found = state_.emplace(key, std::move(state)).first;
        } else {
          existing.push_back(static_cast<torch::optim::SGDParamState&>(*found->second).momentum_buffer());
          existing_updates.push_back(updates[i]);
        }
        if (!options.nesterov())
          updates[i] = static_cast<torch::optim::SGDParamState&>(*found->second).momentum_buffer();
      }
      if (!existing.empty()) {
        at::_foreach_mul_(existing, options.momentum());
        at::_foreach_add_(existing, existing_updates, 1 - options.dampening());
      }
      if (options.nesterov()) {
        std::vector<torch::Tensor> buffers;
        for (const auto& p : params)
          buffers.push_back(static_cast<torch::optim::SGDParamState&>(*state_.at(state_key<decltype(state_)>(p))).momentum_buffer());
        updates = at::_foreach_add(updates, buffers, options.momentum());
      }
    }
    at::_foreach_add_(params, updates, -1 * options.lr());
  }
  return loss;
}

}  // namespace hcl::train
