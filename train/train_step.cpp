// TrainStep: the model, its gradient buckets, optimizer and finite-step guard, and the one
// sequence of a data-parallel optimizer step (see train_step.h).
#include "train/train_step.h"

#include <cmath>
#include <optional>

#include "core/check.h"
#include "core/torch_compat.h"
#include "dist/sync_batchnorm.h"
#include "train/fault_injection.h"
#include "train/global_objective.h"

namespace hcl::train {
namespace {

// The one SyncBatchNorm factory: every norm layer of the model synchronised over `comm` (or the
// default per-rank BatchNorm).
model::NormFactory norm_layers(bool sync_bn, dist::Communicator& comm) {
  model::NormFactory norm;
  if (!sync_bn) return norm;
  norm.norm2d = [&comm](int64_t c) { return torch::nn::AnyModule(dist::SyncBatchNorm(c, comm)); };
  norm.norm1d = norm.norm2d;
  return norm;
}

model::ContrastiveModel placed_on(model::ContrastiveModel net, const torch::Device& device) {
  net->to(device);
  if (device.is_cuda()) model::to_channels_last(*net);
  return net;
}

}  // namespace

TrainStep::TrainStep(dist::Communicator comm, const ModelBuilder& build, StepOptions options,
                     const OptimizerOptions& optimizer, const torch::Device& device)
    : comm_(std::move(comm)),
      options_(options),
      device_(device),
      model_(placed_on(build(norm_layers(options.sync_bn(), comm_)), device)),
      data_parallel_(comm_, *model_,
                     dist::DataParallelOptions().bucket_bytes(options.bucket_bytes()).overlap(options.overlap())),
      optimizer_(*model_, optimizer),
      guard_(*model_, options.max_skipped_steps()) {
  HCL_REQUIRE(options_.accumulate() >= 1, "accumulate must be >= 1, got ", options_.accumulate());
  HCL_REQUIRE(!options_.bf16() || device_.is_cuda(), "TrainStep: bf16 autocast needs a CUDA device");
  data_parallel_.broadcast_from_root();
  data_parallel_.verify_replicas();
}

StepResult TrainStep::run(const torch::Tensor& view1, const torch::Tensor& view2,
                          const loss::ObjectiveOptions& objective, double lr, int64_t step, PhaseTimer* timer) {
  if (fault_plan().at(FaultPlan::Kind::Throw, step, comm().rank()))
    throw Error(detail::concat("injected fault (HCL_FAULT) at step ", step, " on rank ", comm().rank()));
  const int64_t k = options_.accumulate();
  HCL_REQUIRE(view1.sizes() == view2.sizes() && view1.size(0) % k == 0, "TrainStep: two views of one shape "
              "whose batch (", view1.size(0), ") the ", k, " micro-batches divide");
  const int64_t micro = view1.size(0) / k;
  StepResult result;
  const auto phase_done = [timer](Phase phase) {
    if (timer) timer->end_phase(phase);
  };
  optimizer_.zero_grad();
  if (options_.finite_check()) guard_.before_forward();
  const double scale = loss_scale(step);
  for (int64_t m = 0; m < k; ++m) {
    data_parallel_.begin(/*sync=*/m + 1 == k);  // buckets are reduced in the last backward only
    const MicroBatch out = forward_backward(view1.narrow(0, m * micro, micro), view2.narrow(0, m * micro, micro),
                                            objective, scale, phase_done);
    result.loss = result.loss.defined() ? result.loss + out.loss / k : out.loss / k;
    if (m == 0) result.stats = out.stats;
  }
  data_parallel_.finish();
  phase_done(Phase::Sync);
  // Every rank takes the same decision (one all-reduce), so the ranks' parameters stay replicas.
  result.applied = !options_.finite_check() || guard_.check(comm_, result.loss, step);
  if (result.applied) {
    if (gradient_observer_) gradient_observer_();
    optimizer_.set_lr(lr);
    optimizer_.step();
  }
  phase_done(Phase::Optimizer);
  return result;
}

// 1/k for k micro-batches (their gradients add up to the mean's); NaN where HCL_FAULT plans
// non-finite gradients for this rank (the fault tests).
double TrainStep::loss_scale(int64_t step) const {
  if (fault_plan().at(FaultPlan::Kind::NanGrad, step, comm_.rank())) return std::nan("");
  return 1.0 / static_cast<double>(options_.accumulate());
}

// Forward both views, the global objective over the checked communicator (its gather's backward
// is a reduce-scatter: every rank's loss depends on every rank's views), then backward of
// loss * loss_scale.
TrainStep::MicroBatch TrainStep::forward_backward(const torch::Tensor& view1, const torch::Tensor& view2,
                                                  const loss::ObjectiveOptions& objective, double loss_scale,
                                                  const std::function<void(Phase)>& phase_done) {
  std::optional<compat::CudaBf16Autocast> autocast;
  if (options_.bf16()) autocast.emplace();
  torch::Tensor z1, z2;
  if (options_.view_forward() == ViewForward::PerView) {
    z1 = model_->forward(view1).projection;
    z2 = model_->forward(view2).projection;
  } else {
    const torch::Tensor both = model_->forward(torch::cat({view1, view2}, 0)).projection;
    z1 = both.narrow(0, 0, view1.size(0));
    z2 = both.narrow(0, view1.size(0), view2.size(0));
  }
  phase_done(Phase::Forward);
  loss::ObjectiveResult result = global_objective(comm_, z1, z2, objective);
  phase_done(Phase::Objective);
  (loss_scale == 1.0 ? result.loss : result.loss * loss_scale).backward();
  phase_done(Phase::Backward);
  return {result.loss.detach(), result.stats};
}

torch::Tensor TrainStep::grad_norm() const {
  return options_.finite_check() ? guard_.grad_norm() : gradient_norm(model_->parameters());
}

}  // namespace hcl::train
