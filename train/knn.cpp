// Distributed weighted kNN evaluation.
#include "train/knn.h"

#include "core/check.h"
#include "data/sampler.h"

namespace hcl::train {
namespace {

// The first `limit` images of a fixed permutation (all when limit is 0 or too large).
torch::Tensor subset(int64_t n, int64_t limit, uint64_t key) {
  if (limit <= 0 || limit >= n) return torch::arange(n, torch::kLong);
  const auto p = data::permutation(n, key);
  return torch::tensor(std::vector<int64_t>(p.begin(), p.begin() + limit), torch::kLong);
}

// Rank r's share [r * ceil(n/W), ...) of n items, and the padded share size.
std::pair<int64_t, int64_t> share(int64_t n, int rank, int world) {
  const int64_t per = (n + world - 1) / world;
  const int64_t begin = std::min(n, per * rank);
  return {begin, std::min(n, begin + per) - begin};
}

}  // namespace

torch::Tensor embed(model::ContrastiveModel& model, const data::TwoViewAugmenter& transform,
                    const torch::Tensor& images, int64_t batch, const torch::Device& device,
                    bool normalize) {
  torch::NoGradGuard no_grad;
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

std::pair<int64_t, int64_t> knn_votes(const torch::Tensor& queries, const torch::Tensor& query_labels,
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
  const int64_t top5 = hits.narrow(1, 0, std::min<int64_t>(5, num_classes)).any(1).sum().item<int64_t>();
  return {hits.select(1, 0).sum().item<int64_t>(), top5};
}

torch::Tensor embed_distributed(model::ContrastiveModel& model, dist::Communicator& comm,
                                const data::TwoViewAugmenter& transform, const torch::Tensor& images,
                                int64_t batch, const torch::Device& device, bool normalize) {
  const int w = comm.world_size();
  const int64_t n = images.size(0), per = (n + w - 1) / w;
  const auto [begin, count] = share(n, comm.rank(), w);
  const torch::Tensor mine = embed(model, transform, images.narrow(0, begin, count), batch, device, normalize);
  // Shares padded to equal size for the gather, then trimmed.
  const int64_t dim = model->encoder->feature_dim();
  torch::Tensor padded = torch::zeros({per, dim}, torch::TensorOptions().dtype(torch::kFloat).device(device));
  if (count > 0) padded.narrow(0, 0, count).copy_(mine);
  const torch::Tensor gathered = comm.all_gather(padded);
  std::vector<torch::Tensor> rows;
  for (int q = 0; q < w; ++q) {
    const int64_t q_count = share(n, q, w).second;
    if (q_count > 0) rows.push_back(gathered.narrow(0, q * per, q_count));
  }
  return torch::cat(rows, 0);
}

KnnResult knn_evaluate(model::ContrastiveModel& model, dist::Communicator& comm,
                       const data::TwoViewAugmenter& transform, const data::Dataset& train,
                       const data::Dataset& test, const KnnOptions& o, const torch::Device& device) {
  HCL_REQUIRE(train.labels.ge(0).all().item<bool>(),
              "kNN monitor: the memory bank split has unlabeled images (use a labeled split)");
  const int w = comm.world_size(), r = comm.rank();
  const torch::Tensor bank_index = subset(train.size(), o.bank_size(), static_cast<uint64_t>(o.seed()) * 2 + 1);
  const torch::Tensor test_index = subset(test.size(), o.test_size(), static_cast<uint64_t>(o.seed()) * 2 + 2);

  const int64_t n_bank = bank_index.size(0);
  const torch::Tensor bank = embed_distributed(model, comm, transform, train.images.index_select(0, bank_index),
                                               o.batch(), device, /*normalize=*/true);
  const torch::Tensor bank_labels = train.labels.index_select(0, bank_index).to(device);

  // This rank's test images.
  const auto [test_begin, test_count] = share(test_index.size(0), r, w);
  const torch::Tensor my_test = test_index.narrow(0, test_begin, test_count);
  int64_t top1 = 0, top5 = 0;
  for (int64_t i = 0; i < test_count; i += o.batch()) {
    const torch::Tensor idx = my_test.narrow(0, i, std::min(o.batch(), test_count - i));
    const torch::Tensor q = embed(model, transform, test.images.index_select(0, idx), o.batch(), device);
    const auto [c1, c5] = knn_votes(q, test.labels.index_select(0, idx).to(device), bank, bank_labels,
                                    train.num_classes, o.k(), o.temperature());
    top1 += c1;
    top5 += c5;
  }
  torch::Tensor counts = torch::tensor({top1, top5}, torch::kLong).to(device);
  comm.all_reduce(counts, dist::ReduceOp::Sum);
  const auto total = static_cast<double>(test_index.size(0));
  const auto c = counts.cpu();
  return {c[0].item<int64_t>() / total, c[1].item<int64_t>() / total, n_bank, test_index.size(0)};
}

}  // namespace hcl::train
