// Frozen features, then a linear classifier trained with Adam.
#include "train/linear_eval.h"

#include <cmath>

#include "core/check.h"
#include "core/log.h"
#include "data/augment.h"
#include "data/sampler.h"
#include "train/knn.h"

namespace hcl::train {
namespace {

std::pair<double, double> accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t k = std::min<int64_t>(5, logits.size(1));
  const torch::Tensor top = std::get<1>(logits.topk(k, 1)).eq(labels.unsqueeze(1));
  const auto n = static_cast<double>(labels.size(0));
  return {top.select(1, 0).sum().item<double>() / n, top.any(1).sum().item<double>() / n};
}

// A classifier whose loss is no longer finite has diverged: its accuracy means nothing. Every rank
// learns it (one all-reduce per epoch) and stops together (exit 1).
void check_finite_loss(dist::Communicator& comm, double mean_loss, int64_t epoch, const LinearEvalOptions& o) {
  torch::Tensor bad = torch::tensor({std::isfinite(mean_loss) ? int64_t{0} : int64_t{1}}, torch::kLong);
  comm.all_reduce(bad, dist::ReduceOp::Max);
  if (bad.item<int64_t>() != 0)
    throw AgreedError(detail::concat("linear evaluation diverged: the classifier's loss is ",
                                     std::isnan(mean_loss) ? "NaN" : "infinite",
                                     " at epoch ", epoch + 1, " of ", o.epochs(), " (--lr ", o.lr(),
                                     "); try a lower --lr"));
}

}  // namespace

LinearEvalResult linear_evaluation(model::ContrastiveModel& model, dist::Communicator& comm,
                                   const data::Dataset& train, const data::Dataset& test,
                                   data::DatasetKind dataset, const LinearEvalOptions& o,
                                   const torch::Device& device) {
  HCL_REQUIRE(o.epochs() >= 1 && o.batch_size() >= 1 && o.lr() > 0 && o.weight_decay() >= 0,
              "linear evaluation: epochs, batch size and lr must be positive");
  HCL_REQUIRE(train.labels.ge(0).all().item<bool>(), "linear evaluation needs a labeled train split");
  const auto [mean, stddev] = data::dataset_normalization(dataset, train.channels());
  const data::TwoViewAugmenter transform(
      data::AugmentOptions().output_size(train.height()).mean(mean).stddev(stddev), 0);
  const torch::Tensor train_x = embed_distributed(model, comm, transform, train.images, 512, device, false);
  const torch::Tensor test_x = embed_distributed(model, comm, transform, test.images, 512, device, false);
  const torch::Tensor train_y = train.labels.to(device), test_y = test.labels.to(device);

  torch::manual_seed(static_cast<uint64_t>(o.seed()));
  torch::nn::Linear classifier(train_x.size(1), train.num_classes);
  classifier->to(device);
  torch::optim::Adam optimizer(classifier->parameters(),
                               torch::optim::AdamOptions(o.lr()).weight_decay(o.weight_decay()));
  const int64_t n = train_x.size(0);
  for (int64_t epoch = 0; epoch < o.epochs(); ++epoch) {
    const auto order = data::permutation(n, data::mix64(static_cast<uint64_t>(o.seed()) ^ data::mix64(epoch)));
    const torch::Tensor perm = torch::tensor(order, torch::kLong).to(device);
    torch::Tensor total = torch::zeros({}, train_x.options());  // read once per logged epoch
    for (int64_t i = 0; i < n; i += o.batch_size()) {
      const torch::Tensor idx = perm.narrow(0, i, std::min(o.batch_size(), n - i));
      optimizer.zero_grad();
      const torch::Tensor loss = torch::nn::functional::cross_entropy(classifier(train_x.index_select(0, idx)),
                                                                      train_y.index_select(0, idx));
      loss.backward();
      optimizer.step();
      total += loss.detach() * idx.size(0);
    }
    const double mean_loss = total.item<double>() / n;
    check_finite_loss(comm, mean_loss, epoch, o);
    if ((epoch + 1) % 10 == 0 || epoch + 1 == o.epochs())
      HCL_LOG(info) << "linear evaluation: epoch " << epoch + 1 << "/" << o.epochs() << " loss " << mean_loss;
  }
  torch::NoGradGuard no_grad;
  LinearEvalResult r;
  std::tie(r.top1, r.top5) = accuracy(classifier(test_x), test_y);
  r.train_top1 = accuracy(classifier(train_x), train_y).first;
  r.train_images = n;
  r.test_images = test_x.size(0);
  return r;
}

}  // namespace hcl::train
