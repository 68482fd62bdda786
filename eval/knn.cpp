// Distributed weighted kNN evaluation.
#include "eval/knn.h"

#include <algorithm>
#include <optional>

#include "core/check.h"
#include "core/torch_compat.h"
#include "data/sampler.h"

namespace hcl::eval {
namespace {

// The split's subset for the kNN monitor (data::subset_indices: the one rule).
torch::Tensor subset(int64_t n, int64_t limit, int64_t seed, data::SubsetRole role) {
  return torch::tensor(data::subset_indices(n, limit, seed, role), torch::kLong);
}

}  // namespace

std::pair<int64_t, int64_t> rank_share(int64_t n, int rank, int world) {
  const int64_t per = (n + world - 1) / world;
  const int64_t begin = std::min(n, per * rank);
  return {begin, std::min(n, begin + per) - begin};
}

torch::Tensor gather_shares(dist::Communicator& comm, const torch::Tensor& mine, int64_t n, int64_t dim) {
  const int w = comm.world_size();
  const int64_t per = (n + w - 1) / w, count = rank_share(n, comm.rank(), w).second;
  // Shares padded to equal size for the gather, then trimmed.
  torch::Tensor padded = torch::zeros({per, dim}, torch::TensorOptions().dtype(torch::kFloat).device(mine.device()));
  if (count > 0) padded.narrow(0, 0, count).copy_(mine);
  const torch::Tensor gathered = comm.all_gather(padded);
  std::vector<torch::Tensor> rows;
  for (int q = 0; q < w; ++q) {
    const int64_t q_count = rank_share(n, q, w).second;
    if (q_count > 0) rows.push_back(gathered.narrow(0, q * per, q_count));
  }
  return rows.empty() ? torch::empty({0, dim}, padded.options()) : torch::cat(rows, 0);
}

torch::Tensor embed(model::ContrastiveModel& model, const data::TwoViewAugmenter& transform,
                    const torch::Tensor& images, int64_t batch, const torch::Device& device,
                    bool normalize, bool bf16) {
  torch::NoGradGuard no_grad;
  std::optional<compat::CudaBf16Autocast> autocast;
  if (bf16 && device.is_cuda()) autocast.emplace();
  model->eval();
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < images.size(0); i += batch) {
    const torch::Tensor x = transform.evaluation(images.narrow(0, i, std::min(batch, images.size(0) - i)).to(device));
    const torch::Tensor f = model->features(x).to(torch::kFloat);
    parts.push_back(normalize ? torch::nn::functional::normalize(f, torch::nn::functional::NormalizeFuncOptions().dim(1))
                              : f);
  }
  const int64_t dim = parts.empty() ? 0 : parts.front().size(1);
  return parts.empty() ? torch::empty({0, dim}, torch::TensorOptions().device(device)) : torch::cat(parts, 0);
}

torch::Tensor knn_vote_counts(const torch::Tensor& queries, const torch::Tensor& query_labels,
                              const torch::Tensor& bank, const torch::Tensor& bank_labels,
                              int64_t num_classes, int64_t k, double temperature) {
  const int64_t kk = std::min<int64_t>(k, bank.size(0));
  const auto [weight, index] = queries.mm(bank.t()).topk(kk, 1);
  const torch::Tensor labels = bank_labels.index_select(0, index.flatten()).view({-1, kk});
  const torch::Tensor w = (weight / temperature).exp();
  torch::Tensor scores = torch::zeros({queries.size(0), num_classes}, w.options());
  scores.scatter_add_(1, labels, w);
  const torch::Tensor ranked = scores.argsort(1, /*descending=*/true);
  const torch::Tensor hits = ranked.eq(query_labels.unsqueeze(1));
  const torch::Tensor top5 = hits.narrow(1, 0, std::min<int64_t>(5, num_classes)).any(1).sum();
  return torch::stack({hits.select(1, 0).sum(), top5}).to(torch::kLong);
}

std::pair<int64_t, int64_t> knn_votes(const torch::Tensor& queries, const torch::Tensor& query_labels,
                                      const torch::Tensor& bank, const torch::Tensor& bank_labels,
                                      int64_t num_classes, int64_t k, double temperature) {
  const torch::Tensor c = knn_vote_counts(queries, query_labels, bank, bank_labels, num_classes, k, temperature).cpu();
  return {c[0].item<int64_t>(), c[1].item<int64_t>()};
}

torch::Tensor embed_distributed(model::ContrastiveModel& model, dist::Communicator& comm,
                                const data::TwoViewAugmenter& transform, const torch::Tensor& images,
                                int64_t batch, const torch::Device& device, bool normalize, bool bf16) {
  const int64_t n = images.size(0);
  const auto [begin, count] = rank_share(n, comm.rank(), comm.world_size());
  const torch::Tensor mine = embed(model, transform, images.narrow(0, begin, count), batch, device, normalize, bf16);
  return gather_shares(comm, mine, n, model->encoder->feature_dim());
}

namespace {
// Whether every label of `d` is known (>= 0), read from host memory (no tensor op).
bool all_labeled(const data::Dataset& d) {
  const torch::Tensor labels = d.labels.to(torch::kLong).contiguous();
  const int64_t* p = labels.data_ptr<int64_t>();
  return std::all_of(p, p + labels.numel(), [](int64_t label) { return label >= 0; });
}
}  // namespace

KnnResult knn_evaluate(model::ContrastiveModel& model, dist::Communicator& comm,
                       const data::TwoViewAugmenter& transform, const data::Dataset& train,
                       const data::Dataset& test, const KnnOptions& o, const torch::Device& device) {
  HCL_REQUIRE(all_labeled(train), "kNN monitor: the memory bank split has unlabeled images (use a labeled split)");
  const int w = comm.world_size(), r = comm.rank();
  const torch::Tensor bank_index = subset(train.size(), o.bank_size(), o.seed(), data::SubsetRole::Train);
  const torch::Tensor test_index = subset(test.size(), o.test_size(), o.seed(), data::SubsetRole::Test);

  const int64_t n_bank = bank_index.size(0);
  const torch::Tensor bank = embed_distributed(model, comm, transform, train.images.index_select(0, bank_index),
                                               o.batch(), device, /*normalize=*/true, o.bf16());
  const torch::Tensor bank_labels = train.labels.index_select(0, bank_index).to(device);

  // This rank's test images; the counts accumulate on the device.
  const auto [test_begin, test_count] = rank_share(test_index.size(0), r, w);
  const torch::Tensor my_test = test_index.narrow(0, test_begin, test_count);
  torch::Tensor counts = torch::zeros({2}, torch::TensorOptions().dtype(torch::kLong).device(device));
  for (int64_t i = 0; i < test_count; i += o.batch()) {
    const torch::Tensor idx = my_test.narrow(0, i, std::min(o.batch(), test_count - i));
    const torch::Tensor q = embed(model, transform, test.images.index_select(0, idx), o.batch(), device,
                                  /*normalize=*/true, o.bf16());
    counts += knn_vote_counts(q, test.labels.index_select(0, idx).to(device), bank, bank_labels,
                              train.num_classes, o.k(), o.temperature());
  }
  comm.all_reduce(counts, dist::ReduceOp::Sum);
  // One host read: top-1 in the high 32 bits, top-5 in the low (each count is at most the test
  // size, < 2^31, so the packed number neither carries nor overflows).
  const int64_t packed = (counts[0] * (int64_t{1} << 32) + counts[1]).item<int64_t>();
  const auto total = static_cast<double>(test_index.size(0));
  return {static_cast<double>(packed >> 32) / total, static_cast<double>(packed & 0xffffffffLL) / total, n_bank,
          test_index.size(0)};
}

}  // namespace hcl::eval
