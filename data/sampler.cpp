// Epoch permutations and the per-rank slices of each global batch.
#include "data/sampler.h"

#include "core/check.h"

namespace hcl::data {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::vector<int64_t> permutation(int64_t n, uint64_t key) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  uint64_t state = key;
  for (int64_t i = n - 1; i > 0; --i) {
    state = mix64(state);
    // The modulo bias is below n / 2^64: negligible for any dataset.
    const auto j = static_cast<int64_t>(state % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

DistributedSampler::DistributedSampler(int64_t dataset_size, int64_t per_rank_batch, int rank,
                                       int world_size, uint64_t seed, bool drop_last)
    : dataset_size_(dataset_size),
      per_rank_batch_(per_rank_batch),
      rank_(rank),
      world_size_(world_size),
      seed_(seed),
      drop_last_(drop_last) {
  HCL_REQUIRE(per_rank_batch >= 1, "batch size per rank must be >= 1, got ", per_rank_batch);
  HCL_ASSERT(world_size >= 1 && rank >= 0 && rank < world_size, "bad rank ", rank, " of ", world_size);
  const int64_t global = per_rank_batch * world_size;
  HCL_REQUIRE(dataset_size >= global, "the global batch (", per_rank_batch, " per rank x ",
              world_size, " ranks = ", global, " images) is larger than the dataset (",
              dataset_size, " images)");
  steps_per_epoch_ = drop_last ? dataset_size / global : (dataset_size + global - 1) / global;
}

const std::vector<int64_t>& DistributedSampler::epoch_permutation(int64_t epoch) {
  if (epoch != cached_epoch_) {
    cached_ = permutation(dataset_size_, mix64(seed_ ^ mix64(static_cast<uint64_t>(epoch))));
    cached_epoch_ = epoch;
  }
  return cached_;
}

torch::Tensor DistributedSampler::global_indices(int64_t epoch, int64_t step) {
  HCL_ASSERT(epoch >= 0 && step >= 0 && step < steps_per_epoch_, "sampler: step ", step,
             " of epoch ", epoch, " outside [0, ", steps_per_epoch_, ")");
  const auto& perm = epoch_permutation(epoch);
  const int64_t global = global_batch();
  torch::Tensor out = torch::empty({global}, torch::kLong);
  auto* p = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < global; ++i) p[i] = perm[(step * global + i) % dataset_size_];
  return out;
}

torch::Tensor DistributedSampler::rank_indices(int64_t epoch, int64_t step) {
  return global_indices(epoch, step).narrow(0, rank_ * per_rank_batch_, per_rank_batch_).clone();
}

}  // namespace hcl::data
