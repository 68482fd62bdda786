// The gradient buckets and replica start-up of dist::DataParallel.
#include "dist/data_parallel.h"

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
  for (const torch::Tensor& p : params_)
    HCL_REQUIRE(p.device() == device, "data parallel: parameters on several devices (", device, ", ", p.device(), ")");
  if (comm.world_size() == 1) return;  // the average over one rank is the gradient: no buckets
  order_ = make_stream_order(device);

  // Buckets in reverse parameter order (the order backward produces gradients), one dtype each.
  bucket_of_.resize(params_.size());
  slot_of_.resize(params_.size());
  filled_.assign(params_.size(), false);
  int64_t bucket_elements = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const torch::Tensor& p = params_[k];
    const bool new_bucket = buckets_.empty() ||
                            buckets_.back().buffer.scalar_type() != p.scalar_type() ||
                            (bucket_elements + p.numel()) * p.element_size() > options.bucket_bytes();
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
  // Hooks run for every backward; they act only between begin(sync = true) and finish().
  for (size_t k = 0; k < params_.size(); ++k)
    params_[k].register_hook([this, k](const torch::Tensor& grad) {
      if (armed_ && options_.overlap()) on_gradient(k, grad);
    });
  HCL_LOG(debug) << "data parallel: " << params_.size() << " parameters in " << buckets_.size()
                 << " buckets of <= " << options.bucket_bytes() << " bytes";
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

void DataParallel::begin(bool sync) {
  armed_ = sync;
  next_launch_ = 0;
  std::fill(filled_.begin(), filled_.end(), false);
  for (Bucket& b : buckets_) b.filled = 0;
}

// slot = incoming gradient (+ what earlier micro-batches accumulated in .grad), or zeros.
void DataParallel::fill_slot(size_t k, const torch::Tensor* incoming) {
  Bucket& b = buckets_[bucket_of_[k]];
  const size_t s = slot_of_[k];
  const torch::Tensor& p = params_[k];
  torch::Tensor slot = b.buffer.narrow(0, b.offsets[s], p.numel()).view(p.sizes());
  const torch::Tensor& accumulated = p.grad();
  if (incoming && accumulated.defined()) {
    torch::add_out(slot, *incoming, accumulated);
  } else if (incoming) {
    slot.copy_(*incoming);
  } else if (accumulated.defined()) {
    slot.copy_(accumulated);
  } else {
    slot.zero_();
  }
  filled_[k] = true;
  ++b.filled;
}

void DataParallel::on_gradient(size_t k, const torch::Tensor& grad) {
  if (filled_[k]) return;
  fill_slot(k, &grad);
  launch_ready_buckets();
}

void DataParallel::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].filled == buckets_[next_launch_].params.size())
    launch(buckets_[next_launch_++]);
}

void DataParallel::launch(Bucket& bucket) {
  // Buckets have the same layout on every rank by construction (the replicas were compared at
  // start-up), so the per-call shape check would only add an all-reduce per bucket.
  order_->launch([&] { comm_->all_reduce(bucket.buffer, ReduceOp::Avg, CollectiveOptions::without_shape_check()); });
}

void DataParallel::finish() {
  if (!armed_) return;
  if (buckets_.empty()) {  // one rank: .grad holds the result already; unused parameters get zeros
    for (torch::Tensor& p : params_)
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    armed_ = false;
    last_wait_seconds_ = 0;
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  // Gradients that no hook delivered (overlap off, or parameters unused on this rank).
  for (size_t k = 0; k < params_.size(); ++k)
    if (!filled_[k]) fill_slot(k, nullptr);
  launch_ready_buckets();
  order_->join();
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < params_.size(); ++k) {
    const Bucket& b = buckets_[bucket_of_[k]];
    torch::Tensor& p = params_[k];
    const torch::Tensor averaged = b.buffer.narrow(0, b.offsets[slot_of_[k]], p.numel()).view(p.sizes());
    if (p.grad().defined())
      p.mutable_grad().copy_(averaged);
    else
      p.mutable_grad() = averaged.clone();
  }
  armed_ = false;
  last_wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace hcl::dist
