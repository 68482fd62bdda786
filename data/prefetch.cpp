// BatchPrefetcher: one batch (images and view parameters) ahead on a std::async thread.
#include "data/prefetch.h"

#include <chrono>

#include "data/image_folder.h"

namespace hcl::data {

BatchPrefetcher::BatchPrefetcher(const Dataset& dataset, DistributedSampler& sampler, bool pin_memory)
    : dataset_(dataset), sampler_(sampler), pin_(pin_memory) {}

BatchPrefetcher::BatchPrefetcher(const Dataset& dataset, DistributedSampler& sampler, bool pin_memory,
                                 const TwoViewAugmenter& augmenter)
    : dataset_(dataset), sampler_(sampler), pin_(pin_memory), augmenter_(&augmenter) {}

BatchPrefetcher::~BatchPrefetcher() {
  if (pending_.valid()) pending_.wait();
}

HostBatch BatchPrefetcher::load(int64_t epoch, int64_t step) {
  HostBatch b;
  b.epoch = epoch;
  b.step = step;
  b.indices = sampler_.rank_indices(epoch, step);
  if (dataset_.decodes_on_read() && augmenter_ != nullptr) {  // both views cropped at decode time, by the workers
    b.images = dataset_.folder->decode_views(b.indices, epoch, *augmenter_, pin_);
    b.view_params = augmenter_->sample_cropped_views(b.indices, epoch, b.images.size(1), pin_);
    return b;
  }
  b.images = dataset_.images_at(b.indices);
  if (pin_) b.images = b.images.pin_memory();
  if (augmenter_ != nullptr)
    b.view_params = augmenter_->sample_views(b.indices, epoch, b.images.size(1), b.images.size(2),
                                             b.images.size(3), pin_);
  return b;
}

void BatchPrefetcher::start(int64_t epoch, int64_t step) {
  pending_epoch_ = epoch;
  pending_step_ = step;
  pending_ = std::async(std::launch::async, [this, epoch, step] { return load(epoch, step); });
}

HostBatch BatchPrefetcher::get(int64_t epoch, int64_t step) {
  const auto asked = std::chrono::steady_clock::now();
  HostBatch batch;
  if (pending_.valid() && pending_epoch_ == epoch && pending_step_ == step) {
    batch = pending_.get();
  } else {
    if (pending_.valid()) pending_.wait();
    batch = load(epoch, step);
  }
  waited_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count();
  int64_t next_epoch = epoch, next_step = step + 1;
  if (next_step >= sampler_.steps_per_epoch()) next_epoch += 1, next_step = 0;
  start(next_epoch, next_step);
  return batch;
}

}  // namespace hcl::data
