// The kNN monitor of the reference: weighted k-nearest neighbours (weights exp(sim / t)) on
// L2-normalised encoder features, the train split as memory bank and the test split scored.
// Distributed: each rank embeds its share of the bank and of the test images; the bank is
// all-gathered and the correct counts summed. On CUDA the features can be computed under bf16
// autocast (the trainer's --precision); the vote counts stay on the device until one read at the end.
#pragma once

#include <torch/torch.h>

#include "data/augment.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "model/contrastive_model.h"

namespace hcl::eval {

struct KnnOptions {
  TORCH_ARG(int64_t, k) = 200;
  TORCH_ARG(double, temperature) = 0.5;
  TORCH_ARG(int64_t, bank_size) = 0;  // 0: the whole train split
  TORCH_ARG(int64_t, test_size) = 0;  // 0: the whole test split
  TORCH_ARG(int64_t, batch) = 512;
  TORCH_ARG(int64_t, seed) = 0;       // which subset, when sizes are limited (data::subset_indices)
  TORCH_ARG(bool, bf16) = false;      // features under bf16 autocast (CUDA only; ignored on CPU)
};

struct KnnResult {
  double top1 = 0, top5 = 0;  // fractions of the test images scored
  int64_t bank = 0, test = 0;
};

// Encoder features of uint8 `images` (eval mode, in batches on `device`), float32. `bf16`: the
// encoder runs under bf16 autocast on CUDA (nothing changes on CPU).
torch::Tensor embed(model::ContrastiveModel& model, const data::TwoViewAugmenter& transform,
                    const torch::Tensor& images, int64_t batch, const torch::Device& device,
                    bool normalize = true, bool bf16 = false);

// The rows [begin, begin + count) of n items that rank `rank` of `world` handles: equal shares of
// ceil(n / world) rows, the last ones shorter or empty.
std::pair<int64_t, int64_t> rank_share(int64_t n, int rank, int world);

// This rank's share (`mine`: its rank_share(n) rows of float32 features) all-gathered with every
// other rank's, in order: n rows on every rank. Collective.
torch::Tensor gather_shares(dist::Communicator& comm, const torch::Tensor& mine, int64_t n, int64_t dim);

// Encoder features of all of `images`, each rank embedding an equal share, then all-gathered so
// every rank holds them all (in order). `normalize`: L2-normalised rows. Collective; eval mode.
torch::Tensor embed_distributed(model::ContrastiveModel& model, dist::Communicator& comm,
                                const data::TwoViewAugmenter& transform, const torch::Tensor& images,
                                int64_t batch, const torch::Device& device, bool normalize,
                                bool bf16 = false);

// Collective. Leaves the model in eval mode; the caller restores train mode. Reads one value back
// to the host (both counts packed into one number, at the end), none per batch.
KnnResult knn_evaluate(model::ContrastiveModel& model, dist::Communicator& comm,
                       const data::TwoViewAugmenter& transform, const data::Dataset& train,
                       const data::Dataset& test, const KnnOptions& options,
                       const torch::Device& device);

// The weighted vote for a block of queries: top-1 and top-5 correct counts, as a 2-element int64
// tensor on the queries' device (no host read).
torch::Tensor knn_vote_counts(const torch::Tensor& queries, const torch::Tensor& query_labels,
                              const torch::Tensor& bank, const torch::Tensor& bank_labels,
                              int64_t num_classes, int64_t k, double temperature);

// knn_vote_counts read back to the host.
std::pair<int64_t, int64_t> knn_votes(const torch::Tensor& queries, const torch::Tensor& query_labels,
                                      const torch::Tensor& bank, const torch::Tensor& bank_labels,
                                      int64_t num_classes, int64_t k, double temperature);

}  // namespace hcl::eval
