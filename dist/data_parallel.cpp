// The gradient buckets and replica start-up of dist::DataParallel.
#include "dist/data_parallel.h"

#include <torch/csrc/autograd/utils/lambda_post_hook.h>

#include <chrono>

#include "core/check.h"
#include "core/log.h"

namespace hcl::dist {

DataParallel::DataParallel(Communicator& comm, torch::nn::Module& module, DataParallelOptions options)
    : comm_(&comm), options_(options) {
  HCL_REQUIRE(options.bucket_bytes() > 0, "bucket size must be > 0 bytes, got ", options.bucket_bytes());
  for (const auto& item : module.named_parameters())
    if (item.value().requires_grad()) {
      names_.push_back(item.key());
      params_.push_back(item.value());
    }
  for (const auto& item : module.named_buffers()) {
    buffer_names_.push_back(item.key());
    buffers_.push_back(item.value());
  }
  HCL_REQUIRE(!params_.empty(), "data parallel: the module has no trainable parameters");
  const torch::Device device = params_.front().device();
  for (size_t k = 0; k < params_.size(); ++k) {
    HCL_REQUIRE(params_[k].device() == device, "data parallel: parameters on several devices (", device, ", ",
                params_[k].device(), ")");
    HCL_REQUIRE(params_[k].is_non_overlapping_and_dense(), "data parallel: parameter ", names_[k],
                " is not dense (its gradient cannot be a slice of a bucket)");
  }
  // The average over one rank is the gradient: no buckets (unless a test asks for them).
  if (comm.world_size() == 1 && !options.buckets_at_one_rank()) return;
  order_ = make_stream_order(device);
  build_buckets();
  attach_gradients();
  // After each parameter's gradient is accumulated (into its bucket); acts only between
  // begin(sync = true) and finish().
  for (size_t k = 0; k < params_.size(); ++k) {
    accumulators_.push_back(torch::autograd::impl::grad_accumulator(params_[k]));
    accumulators_.back()->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          if (armed_ && options_.overlap()) on_ready(k);
          return outputs;
        }));
  }
  HCL_LOG(debug) << "data parallel: " << params_.size() << " parameters in " << buckets_.size()
                 << " buckets of <= " << options.bucket_bytes() << " bytes";
}

// Buckets in reverse parameter order (the order backward produces gradients), one dtype each.
void DataParallel::build_buckets() {
  bucket_of_.resize(params_.size());
  slot_of_.resize(params_.size());
  ready_.assign(params_.size(), false);
  int64_t bucket_elements = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const torch::Tensor& p = params_[k];
    const bool new_bucket = buckets_.empty() || buckets_.back().buffer.scalar_type() != p.scalar_type() ||
                            (bucket_elements + p.numel()) * p.element_size() > options_.bucket_bytes();
    if (new_bucket) {
      buckets_.push_back({});
      buckets_.back().buffer = torch::empty({0}, p.options());  // dtype marker until sized
      bucket_elements = 0;
    }
    Bucket& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = b.params.size();
    b.params.push_back(k);
    b.offsets.push_back(bucket_elements);
    bucket_elements += p.numel();
    b.buffer = torch::empty({bucket_elements}, p.options());
  }
  for (Bucket& b : buckets_) b.buffer.zero_();
  views_.resize(params_.size());
  for (size_t k = 0; k < params_.size(); ++k) {
    const Bucket& b = buckets_[bucket_of_[k]];
    views_[k] = b.buffer.as_strided(params_[k].sizes(), params_[k].strides(), b.offsets[slot_of_[k]]);
  }
}

void DataParallel::attach_gradients() {
  for (size_t k = 0; k < params_.size(); ++k)
    if (!params_[k].grad().defined() || !params_[k].grad().is_same(views_[k])) params_[k].mutable_grad() = views_[k];
}

void DataParallel::broadcast_from_root() {
  torch::NoGradGuard no_grad;
  for (auto* group : {&params_, &buffers_})
    for (torch::Tensor& t : *group) {
      torch::Tensor data = t.detach();
      comm_->broadcast(data, 0);
    }
}

void DataParallel::verify_replicas() {
  torch::NoGradGuard no_grad;
  // Per tensor: element count, sum and sum of squares (float64, on the CPU).
  std::vector<torch::Tensor> rows;
  for (auto* group : {&params_, &buffers_})
    for (const torch::Tensor& t : *group) {
      const torch::Tensor wide = t.detach().to(torch::kCPU, torch::kDouble);
      rows.push_back(torch::stack({torch::full({}, static_cast<double>(t.numel()), torch::kDouble),
                                   wide.sum(), wide.square().sum()}));
    }
  const torch::Tensor differs = comm_->differs_across_ranks(torch::stack(rows)).any(1);
  if (!differs.any().item<bool>()) return;
  const int64_t first = differs.nonzero()[0][0].item<int64_t>();
  const std::string name = first < static_cast<int64_t>(params_.size())
                               ? "parameter " + names_[first]
                               : "buffer " + buffer_names_[first - params_.size()];
  throw Error("model replicas differ across ranks: " + name +
              " (broadcast from rank 0 first, and build the same model on every rank)");
}

void DataParallel::zero_grad() {
  if (buckets_.empty()) {
    for (torch::Tensor& p : params_) p.mutable_grad().reset();
    return;
  }
  attach_gradients();
  for (Bucket& b : buckets_) b.buffer.zero_();
}

void DataParallel::begin(bool sync) {
  armed_ = sync;
  next_launch_ = 0;
  std::fill(ready_.begin(), ready_.end(), false);
  for (Bucket& b : buckets_) b.ready = 0;
}

void DataParallel::on_ready(size_t k) {
  if (ready_[k]) return;
  ready_[k] = true;
  ++buckets_[bucket_of_[k]].ready;
  launch_ready_buckets();
}

void DataParallel::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == buckets_[next_launch_].params.size())
    launch(buckets_[next_launch_++]);
}

void DataParallel::launch(Bucket& bucket) {
  // Buckets have the same layout on every rank by construction (the replicas were compared at
  // start-up), so the per-call shape check would only add an all-reduce per bucket.
  order_->launch([&] { comm_->all_reduce(bucket.buffer, ReduceOp::Avg, CollectiveOptions::without_shape_check()); });
}

void DataParallel::finish() {
  if (!armed_) return;
  armed_ = false;
  if (buckets_.empty()) {  // one rank: .grad holds the result already; unused parameters get zeros
    for (torch::Tensor& p : params_)
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    last_wait_seconds_ = 0;
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  // Parameters that no hook marked (overlap off, or unused on this rank: their slices hold what
  // earlier micro-batches accumulated, or zeros).
  for (size_t k = 0; k < params_.size(); ++k) {
    HCL_ASSERT(params_[k].grad().is_same(views_[k]), "data parallel: the gradient of ", names_[k],
               " was replaced after zero_grad() (its bucket no longer holds it)");
    on_ready(k);
  }
  order_->join();
  last_wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace hcl::dist
