// The two augmented views of each training step on the training device, made one step ahead: the
// prefetch thread gathers the images and draws the view parameters (BatchPrefetcher); the upload
// and the batched augmentation (TwoViewAugmenter::apply_views) of step k+1 are queued on a side
// stream while step k trains, and handed to the compute stream by an event (core/side_stream.h).
// Two batches of views are alive at a time (double buffering): the one being trained on and the
// one being made. On the CPU the same sequence runs inline.
#pragma once

#include <torch/torch.h>

#include <exception>

#include "core/side_stream.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/prefetch.h"
#include "data/sampler.h"

namespace hcl::data {

class ViewPipeline {
 public:
  // `dataset`, `sampler` and `augmenter` must outlive the pipeline; only its prefetch thread uses
  // the sampler. Host batches are pinned when `device` is a GPU.
  ViewPipeline(const Dataset& dataset, DistributedSampler& sampler, const TwoViewAugmenter& augmenter,
               const torch::Device& device);

  // Both views of the rank's images of (epoch, step), view-major (2B x C x S x S; rows [0, B) are
  // view 0), channels-last on a GPU, ready for the current stream; then queues the next step's. A
  // step other than the one made ahead (a resume, a jump) is made on the spot. An error in making
  // a batch ahead is raised by the call that asks for that batch.
  torch::Tensor views(int64_t epoch, int64_t step);
  // Seconds the host has waited for batches to be loaded so far (BatchPrefetcher::waited_seconds).
  double waited_seconds() const { return prefetcher_.waited_seconds(); }

 private:
  struct Position {
    int64_t epoch = -1, step = -1;
    bool operator==(const Position& o) const { return epoch == o.epoch && step == o.step; }
  };
  // Queues the views of `at` on the side stream (the host waits only for the prefetch thread).
  torch::Tensor make(const Position& at);
  Position after(const Position& at) const;

  BatchPrefetcher prefetcher_;
  const DistributedSampler& sampler_;
  const TwoViewAugmenter& augmenter_;
  const torch::Device device_;
  const torch::MemoryFormat format_;
  SideStream stream_;
  Position ahead_at_;
  torch::Tensor ahead_;
  std::exception_ptr ahead_error_;
};

}  // namespace hcl::data
