// The linear probe: the classifier's inputs per protocol (fixed features, augmented views, raw
// pixels), then one training loop with Adam and the test accuracy.
#include "eval/linear_eval.h"

#include <cmath>
#include <functional>

#include "core/check.h"
#include "core/log.h"
#include "data/augment.h"
#include "data/sampler.h"
#include "eval/knn.h"

namespace hcl::eval {
namespace {

// The classifier's inputs for the train images `index` (int64, every rank the same) in `epoch`.
using TrainInputs = std::function<torch::Tensor(const torch::Tensor& index, int64_t epoch)>;

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

// Normalised raw pixels, flattened: the probe without an encoder.
torch::Tensor pixels(const data::TwoViewAugmenter& transform, const torch::Tensor& images, const torch::Device& device) {
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < images.size(0); i += 4096)
    parts.push_back(transform.evaluation(images.narrow(0, i, std::min<int64_t>(4096, images.size(0) - i)).to(device))
                        .flatten(1).to(torch::kFloat));
  return torch::cat(parts, 0);
}

// Encoder features of one random crop + flip of each of the train images `index` in `epoch`:
// every rank embeds its share of the batch, then the shares are all-gathered.
torch::Tensor augmented_features(model::ContrastiveModel& model, dist::Communicator& comm,
                                 const data::TwoViewAugmenter& crop_flip, const data::Dataset& train,
                                 const torch::Tensor& index, int64_t epoch, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const int64_t n = index.size(0);
  const auto [begin, count] = rank_share(n, comm.rank(), comm.world_size());
  const int64_t dim = model->encoder->feature_dim();
  torch::Tensor mine = torch::empty({0, dim}, torch::TensorOptions().dtype(torch::kFloat).device(device));
  if (count > 0) {
    const torch::Tensor idx = index.narrow(0, begin, count).cpu();
    const torch::Tensor views = crop_flip.view(train.images.index_select(0, idx).to(device), idx, epoch, 0);
    mine = model->features(views).to(torch::kFloat);
  }
  return gather_shares(comm, mine, n, dim);
}

// Trains the classifier on train_inputs(index, epoch) for every batch of every epoch, then scores
// the fixed `train_x` (unaugmented) and `test_x`. Every input is standardised with the mean and
// standard deviation of each dimension of `train_x` (the usual probe: the result does not depend on
// the features' scale or offset, which differ by orders of magnitude between encoders).
LinearEvalResult fit_and_score(dist::Communicator& comm, const TrainInputs& train_inputs, const torch::Tensor& train_x,
                               const torch::Tensor& train_y, const torch::Tensor& test_x, const torch::Tensor& test_y,
                               int64_t num_classes, const LinearEvalOptions& o) {
  const torch::Tensor mean = train_x.mean(0), inv_std = train_x.std(0, /*unbiased=*/false).clamp_min(1e-6).reciprocal();
  const auto standardised = [&](const torch::Tensor& x) { return (x - mean) * inv_std; };
  torch::manual_seed(static_cast<uint64_t>(o.seed()));
  torch::nn::Linear classifier(train_x.size(1), num_classes);
  classifier->to(train_x.device());
  torch::optim::Adam optimizer(classifier->parameters(),
                               torch::optim::AdamOptions(o.lr()).weight_decay(o.weight_decay()));
  const int64_t n = train_x.size(0);
  for (int64_t epoch = 0; epoch < o.epochs(); ++epoch) {
    const auto order = data::permutation(n, data::mix64(static_cast<uint64_t>(o.seed()) ^ data::mix64(epoch)));
    const torch::Tensor perm = torch::tensor(order, torch::kLong).to(train_x.device());
    torch::Tensor total = torch::zeros({}, train_x.options());  // read once per epoch
    for (int64_t i = 0; i < n; i += o.batch_size()) {
      const torch::Tensor idx = perm.narrow(0, i, std::min(o.batch_size(), n - i));
      optimizer.zero_grad();
      const torch::Tensor loss =
          torch::nn::functional::cross_entropy(classifier(standardised(train_inputs(idx, epoch))), train_y.index_select(0, idx));
      loss.backward();
      optimizer.step();
      total += loss.detach() * idx.size(0);
    }
    const double mean_loss = total.item<double>() / n;
    check_finite_loss(comm, mean_loss, epoch, o);
    if ((epoch + 1) % 10 == 0 || epoch + 1 == o.epochs())
      HCL_LOG(info) << "linear evaluation (" << name_of(o.input()) << "): epoch " << epoch + 1 << "/" << o.epochs()
                    << " loss " << mean_loss;
  }
  torch::NoGradGuard no_grad;
  LinearEvalResult r;
  std::tie(r.top1, r.top5) = accuracy(classifier(standardised(test_x)), test_y);
  r.train_top1 = accuracy(classifier(standardised(train_x)), train_y).first;
  r.train_images = n;
  r.test_images = test_x.size(0);
  r.input_dim = train_x.size(1);
  return r;
}

}  // namespace

LinearEvalResult linear_evaluation(model::ContrastiveModel& model, dist::Communicator& comm,
                                   const data::Dataset& train, const data::Dataset& test,
                                   data::DatasetKind dataset, const LinearEvalOptions& o,
                                   const torch::Device& device) {
  HCL_REQUIRE(o.epochs() >= 1 && o.batch_size() >= 1 && o.lr() > 0 && o.weight_decay() >= 0,
              "linear evaluation: epochs, batch size and lr must be positive");
  HCL_REQUIRE(o.crop_scale_min() > 0 && o.crop_scale_min() <= 1,
              "linear evaluation: the smallest crop must be in (0, 1], got ", o.crop_scale_min());
  HCL_REQUIRE(train.labels.ge(0).all().item<bool>(), "linear evaluation needs a labeled train split");
  HCL_REQUIRE(o.input() == ProbeInput::Pixels || !model.is_empty(), "linear evaluation: no encoder to probe");
  const auto [mean, stddev] = data::dataset_normalization(dataset, train.channels());
  const data::TwoViewAugmenter transform(
      data::AugmentOptions().output_size(train.height()).mean(mean).stddev(stddev), 0);
  const torch::Tensor train_y = train.labels.to(device), test_y = test.labels.to(device);
  if (o.input() == ProbeInput::Pixels) {
    const torch::Tensor train_x = pixels(transform, train.images, device);
    const TrainInputs rows = [&](const torch::Tensor& idx, int64_t) { return train_x.index_select(0, idx); };
    return fit_and_score(comm, rows, train_x, train_y, pixels(transform, test.images, device), test_y,
                         train.num_classes, o);
  }
  const torch::Tensor train_x = embed_distributed(model, comm, transform, train.images, 512, device, false);
  const torch::Tensor test_x = embed_distributed(model, comm, transform, test.images, 512, device, false);
  if (o.input() == ProbeInput::Features) {
    const TrainInputs rows = [&](const torch::Tensor& idx, int64_t) { return train_x.index_select(0, idx); };
    return fit_and_score(comm, rows, train_x, train_y, test_x, test_y, train.num_classes, o);
  }
  // Crop and flip only (no colour changes), keyed by the probe's seed.
  const data::TwoViewAugmenter crop_flip(data::AugmentOptions()
                                             .output_size(train.height())
                                             .scale_min(o.crop_scale_min())
                                             .jitter_p(0)
                                             .grayscale_p(0)
                                             .mean(mean)
                                             .stddev(stddev),
                                         static_cast<uint64_t>(o.seed()));
  const TrainInputs views = [&](const torch::Tensor& idx, int64_t epoch) {
    return augmented_features(model, comm, crop_flip, train, idx, epoch, device);
  };
  return fit_and_score(comm, views, train_x, train_y, test_x, test_y, train.num_classes, o);
}

}  // namespace hcl::eval
