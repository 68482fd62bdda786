// TrainStep: the model, its gradient buckets, optimizer and finite-step guard, and the one
// sequence of a data-parallel optimizer step (see train_step.h).
#include "train/train_step.h"

#include <chrono>
#include <cmath>
#include <optional>

#include "core/check.h"
#include "core/log.h"
#include "core/torch_compat.h"
#include "dist/sync_batchnorm.h"
#include "core/fault_injection.h"
#include "train/global_objective.h"

namespace hcl::train {
namespace {

// The one SyncBatchNorm factory: every norm layer of the model synchronised over `comm` (or the
// default per-rank BatchNorm).
model::NormFactory norm_layers(const StepOptions& options, dist::Communicator& comm) {
  model::NormFactory norm;
  if (!options.sync_bn()) return norm;
  const bool at_one_rank = options.multi_rank_paths_at_one_rank();
  norm.norm2d = [&comm, at_one_rank](int64_t c) {
    return torch::nn::AnyModule(dist::SyncBatchNorm(c, comm, 1e-5, 0.1, at_one_rank));
  };
  norm.norm1d = norm.norm2d;
  return norm;
}

// Why this step cannot be a CUDA graph ("" when it can).
std::string why_no_graph(const StepOptions& options, const torch::Device& device, const Optimizer& optimizer) {
  if (options.cuda_graph() == CudaGraphMode::Off) return "off (--cuda-graph off)";
  if (!device.is_cuda()) return "the device is the CPU";
  if (options.finite_check() && !options.guard_on_device())
    return "the finite check decides on the host";
  if (!optimizer.fused())
    return detail::concat("LibTorch ", TORCH_VERSION, " has no fused optimizer kernels with a device learning "
                          "rate (LibTorch 2.4 or later)");
  if (fault_plan().kind == FaultPlan::Kind::NanGrad) return "HCL_FAULT injects non-finite gradients from the host";
  return "";
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
      stream_(device),
      building_(std::in_place, stream_),
      model_(placed_on(build(norm_layers(options, comm_)), device)),
      data_parallel_(comm_, *model_,
                     dist::DataParallelOptions()
                         .bucket_bytes(options.bucket_bytes())
                         .overlap(options.overlap())
                         .buckets_at_one_rank(options.multi_rank_paths_at_one_rank())),
      optimizer_(*model_, optimizer),
      guard_(*model_, options.max_skipped_steps()) {
  HCL_REQUIRE(options_.accumulate() >= 1, "accumulate must be >= 1, got ", options_.accumulate());
  HCL_REQUIRE(!options_.bf16() || device_.is_cuda(), "TrainStep: bf16 autocast needs a CUDA device");
  data_parallel_.broadcast_from_root();
  data_parallel_.verify_replicas();
  graph_refusal_ = why_no_graph(options_, device_, optimizer_);
  if (options_.cuda_graph() == CudaGraphMode::On)
    HCL_REQUIRE(graph_refusal_.empty(), "--cuda-graph on: not possible here: ", graph_refusal_);
  if (graph_refusal_.empty()) graph_ = std::make_unique<StepGraph>(device_);
  building_.reset();
}

StepResult TrainStep::run(const torch::Tensor& view1, const torch::Tensor& view2,
                          const loss::ObjectiveOptions& objective, double lr, int64_t step, PhaseTimer* timer) {
  if (fault_plan().at(FaultPlan::Kind::Throw, step, comm().rank()))
    throw Error(detail::concat("injected fault (HCL_FAULT) at step ", step, " on rank ", comm().rank()));
  const DedicatedStream::Scope on_training_stream(stream_);
  const int64_t k = options_.accumulate();
  HCL_REQUIRE(view1.sizes() == view2.sizes() && view1.size(0) % k == 0, "TrainStep: two views of one shape "
              "whose batch (", view1.size(0), ") the ", k, " micro-batches divide");
  const bool device_decision = options_.finite_check() && options_.guard_on_device();
  optimizer_.set_lr(lr);  // on the fused path a device scalar: outside the graph
  const bool from_graph = graph_ && ++steps_run_ > options_.graph_warmup_steps() && !objective.check_values() &&
                          !gradient_observer_;
  StepResult result = from_graph ? replayed(view1, view2, objective, step, timer)
                                 : sequence(view1, view2, objective, step, timer);
  if (device_decision) {
    guard_.record(result.skip, step);
    // The previous step's decision, one step late: this step is queued behind it, so waiting for
    // its copy leaves the device busy.
    result.skips = guard_.settle(step - 1);
  }
  return result;
}

StepResult TrainStep::sequence(const torch::Tensor& view1, const torch::Tensor& view2,
                               const loss::ObjectiveOptions& objective, int64_t step, PhaseTimer* timer) {
  const int64_t k = options_.accumulate();
  const int64_t micro = view1.size(0) / k;
  StepResult result;
  const auto phase_done = [timer](Phase phase) {
    if (timer) timer->end_phase(phase);
  };
  data_parallel_.zero_grad();  // W > 1: the gradients are views into the buckets, zeroed in place
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
  if (!options_.finite_check()) {
    if (gradient_observer_) gradient_observer_();
    optimizer_.step();
  } else if (options_.guard_on_device()) {
    result.skip = guard_.decide_on_device(comm_, result.loss);
    if (gradient_observer_) gradient_observer_();
    optimizer_.step(result.skip);
  } else {
    const bool applied = guard_.check(comm_, result.loss, step);
    result.skip = torch::full({1}, applied ? 0.0 : 1.0, torch::kFloat);
    if (!applied) result.skips.push_back({step, guard_.consecutive(), guard_.skipped()});
    if (applied) {
      if (gradient_observer_) gradient_observer_();
      optimizer_.step();
    }
  }
  phase_done(Phase::Optimizer);
  return result;
}

StepResult TrainStep::replayed(const torch::Tensor& view1, const torch::Tensor& view2,
                               const loss::ObjectiveOptions& objective, int64_t step, PhaseTimer* timer) {
  const loss::ObjectiveOptions baked = loss::ObjectiveOptions(objective).with_stats(true);
  if (!graph_->captured() || baked != graph_objective_ || view1.sizes() != slot1_.sizes() ||
      view1.scalar_type() != slot1_.scalar_type()) {
    try {
      capture(view1, view2, baked, step);
    } catch (const std::exception& e) {
      if (options_.cuda_graph() == CudaGraphMode::On) throw;
      // StepGraph::capture has cleaned the allocator up; what the capture made is dropped here.
      graph_.reset();
      graph_out_ = StepResult();
      slot1_ = slot2_ = torch::Tensor();
      graph_refusal_ = detail::concat("the capture failed (", e.what(), ")");
      if (comm_.rank() == 0) HCL_LOG(warning) << "CUDA graph: " << graph_refusal_ << "; steps run eagerly from now on";
      return sequence(view1, view2, objective, step, timer);
    }
  }
  slot1_.copy_(view1);
  slot2_.copy_(view2);
  graph_->replay();
  comm_.watch_enqueued(device_, "training step (CUDA graph replay)");
  ++graph_counts_.replays;
  if (timer) timer->end_phase(Phase::Graph);
  // Copies: the next replay overwrites the graph's outputs.
  StepResult result;
  result.loss = graph_out_.loss.clone();
  result.skip = graph_out_.skip.defined() ? graph_out_.skip.clone() : torch::Tensor();
  const loss::ObjectiveStats& s = graph_out_.stats;
  result.stats = {s.positive_similarity.clone(), s.negative_similarity.clone(), s.floor_fraction.clone(),
                  s.effective_negatives.clone()};
  return result;
}

// Records sequence() on static input slots. Every rank captures at the same step (the warm-up and
// the options are the same everywhere), so the collectives inside line up across ranks.
void TrainStep::capture(const torch::Tensor& view1, const torch::Tensor& view2,
                        const loss::ObjectiveOptions& objective, int64_t step) {
  const auto start = std::chrono::steady_clock::now();
  graph_out_ = StepResult();  // the previous graph's outputs live in its pool: let the pool go with it
  slot1_ = torch::empty_like(view1);
  slot2_ = torch::empty_like(view2);
  graph_objective_ = objective;
  graph_->capture([&] { graph_out_ = sequence(slot1_, slot2_, objective, step, nullptr); });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++graph_counts_.captures;
  graph_counts_.capture_seconds += seconds;
  if (comm_.rank() == 0)
    HCL_LOG(info) << "CUDA graph: captured the step at step " << step << " in " << seconds << " s (capture "
                  << graph_counts_.captures << ")";
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
  loss::ObjectiveResult result;
  {
    // bf16 autocast for forward only: backward() inside the scope would run every backward
    // function under it (the engine carries the caller's autocast state), the objective's own too.
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
    result = global_objective(comm_, z1, z2, objective, options_.objective_comm());
    phase_done(Phase::Objective);
  }
  (loss_scale == 1.0 ? result.loss : result.loss * loss_scale).backward();
  phase_done(Phase::Backward);
  return {result.loss.detach(), result.stats};
}

torch::Tensor TrainStep::grad_norm() const {
  return options_.finite_check() ? guard_.grad_norm() : gradient_norm(model_->parameters());
}

}  // namespace hcl::train
