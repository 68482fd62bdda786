// Prefetches the next step's images on a background thread: the sampler's indices for the rank,
// the uint8 images gathered from the in-memory dataset and, given an augmenter, both views' random
// parameters packed into one tensor (TwoViewAugmenter::sample_views), all pinned when they go to a
// GPU, so the host-to-device copies of step k+1 can start while step k computes. From an image
// folder, the folder's workers decode the images with both views' crops cut at decode time
// (ImageFolder::decode_views, parameters from sample_cropped_views).
#pragma once

#include <torch/torch.h>

#include <future>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/sampler.h"

namespace hcl::data {

struct HostBatch {
  int64_t epoch = 0, step = 0;
  torch::Tensor indices;  // int64, the rank's images
  torch::Tensor images;   // uint8 N x C x H x W, CPU (pinned when requested); image folders with an
                          // augmenter: N x C x 2S x S, both views cropped
  // With an augmenter: float32, TwoViewAugmenter::sample_views of (indices, epoch), pinned when
  // requested; for TwoViewAugmenter::apply_views(images on the device, view_params).
  torch::Tensor view_params;
};

class BatchPrefetcher {
 public:
  // `dataset` and `sampler` must outlive the prefetcher; only its thread uses the sampler.
  BatchPrefetcher(const Dataset& dataset, DistributedSampler& sampler, bool pin_memory);
  // The same, and each batch's view parameters drawn by `augmenter` (which must outlive it).
  BatchPrefetcher(const Dataset& dataset, DistributedSampler& sampler, bool pin_memory,
                  const TwoViewAugmenter& augmenter);
  ~BatchPrefetcher();

  // The batch of (epoch, step); starts loading the one after it.
  HostBatch get(int64_t epoch, int64_t step);
  // Seconds get() has spent waiting for batches so far (the batch made ahead not ready yet, or one
  // made on the spot).
  double waited_seconds() const { return waited_s_; }

 private:
  HostBatch load(int64_t epoch, int64_t step);
  void start(int64_t epoch, int64_t step);

  const Dataset& dataset_;
  DistributedSampler& sampler_;
  bool pin_;
  const TwoViewAugmenter* augmenter_ = nullptr;
  int64_t pending_epoch_ = -1, pending_step_ = -1;
  std::future<HostBatch> pending_;
  double waited_s_ = 0;
};

}  // namespace hcl::data
