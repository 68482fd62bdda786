// ViewPipeline: one batch of views made ahead on a side stream, on top of the prefetch thread.
#include "data/view_pipeline.h"

#include <utility>

namespace hcl::data {

ViewPipeline::ViewPipeline(const Dataset& dataset, DistributedSampler& sampler, const TwoViewAugmenter& augmenter,
                           const torch::Device& device)
    : prefetcher_(dataset, sampler, /*pin_memory=*/device.is_cuda(), augmenter),
      sampler_(sampler),
      augmenter_(augmenter),
      device_(device),
      format_(device.is_cuda() ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous),
      stream_(device) {}

torch::Tensor ViewPipeline::views(int64_t epoch, int64_t step) {
  const Position at{epoch, step};
  if (ahead_at_ == at && ahead_error_) {
    ahead_at_ = {};
    std::rethrow_exception(std::exchange(ahead_error_, nullptr));
  }
  torch::Tensor out = ahead_at_ == at ? std::exchange(ahead_, torch::Tensor()) : make(at);
  stream_.hand_over(out);
  ahead_at_ = after(at);
  try {
    ahead_ = make(ahead_at_);
  } catch (...) {  // this step's views are fine: the error belongs to the step that needs the batch
    ahead_ = torch::Tensor();
    ahead_error_ = std::current_exception();
  }
  return out;
}

torch::Tensor ViewPipeline::make(const Position& at) {
  const HostBatch batch = prefetcher_.get(at.epoch, at.step);
  torch::Tensor views;
  stream_.run([&] {
    views = augmenter_.apply_views(batch.images.to(device_, /*non_blocking=*/true), batch.view_params, format_);
  });
  return views;
}

ViewPipeline::Position ViewPipeline::after(const Position& at) const {
  if (at.step + 1 < sampler_.steps_per_epoch()) return {at.epoch, at.step + 1};
  return {at.epoch + 1, 0};
}

}  // namespace hcl::data
