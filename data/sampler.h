// The distributed sampler: one permutation of the dataset per epoch, made from (seed, epoch) alone
// and so identical on every rank; rank r takes its slice of every global batch. Step k's global
// batch is then the same set of images for any number of ranks W (design, section 2), and any
// (epoch, step) can be produced directly, which is what resuming needs.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace hcl::data {

// 64-bit mixing (splitmix64): decorrelates nearby keys such as (seed, epoch) or (seed, index).
uint64_t mix64(uint64_t x);

// A permutation of 0..n-1 from a 64-bit key, the same on every platform (Fisher-Yates driven by
// splitmix64; no implementation-defined distributions).
std::vector<int64_t> permutation(int64_t n, uint64_t key);

class DistributedSampler {
 public:
  // global_batch = per_rank_batch * world_size images per step. drop_last: the epoch's last,
  // partial global batch is dropped; otherwise it is completed from the start of the permutation.
  DistributedSampler(int64_t dataset_size, int64_t per_rank_batch, int rank, int world_size,
                     uint64_t seed, bool drop_last = true);

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t global_batch() const { return per_rank_batch_ * world_size_; }

  // This rank's image indices (int64, per_rank_batch) for a step of an epoch.
  torch::Tensor rank_indices(int64_t epoch, int64_t step);
  // Every rank's images of the step, rank-major (what one process with the global batch sees).
  torch::Tensor global_indices(int64_t epoch, int64_t step);

 private:
  const std::vector<int64_t>& epoch_permutation(int64_t epoch);

  int64_t dataset_size_, per_rank_batch_;
  int rank_, world_size_;
  uint64_t seed_;
  bool drop_last_;
  int64_t steps_per_epoch_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_;
};

}  // namespace hcl::data
