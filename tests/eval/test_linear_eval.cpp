// Linear evaluation (eval/linear_eval.h): on images whose class is visible in the frozen features
// the linear classifier reaches a high accuracy, while the same images with labels that carry no
// information stay near chance; the same result at every rank count; the augmented-view and
// raw-pixel protocols; bad inputs are errors.
#include <gtest/gtest.h>

#include "core/check.h"
#include "data/dataset.h"
#include "tests/support/mpi_world.h"
#include "eval/linear_eval.h"

namespace hcl::eval {
namespace {

model::ContrastiveModel small_model() {
  torch::manual_seed(0);  // the same frozen encoder on every rank
  return model::ContrastiveModel(
      model::ModelOptions().encoder(model::EncoderOptions().arch(model::Arch::Small)));
}

const LinearEvalOptions kOptions = LinearEvalOptions().epochs(60).batch_size(64).lr(1e-2).seed(1);

TEST(LinearEval, SeparableClassesReachHighAccuracyAndRandomLabelsDoNot) {
  // Synthetic images: class c brightens channel c mod 3 by an amount growing with c, which even an
  // untrained encoder's pooled features show (the kNN test relies on the same).
  const data::Dataset train = data::make_synthetic(300, 3, 32, 3, 1);
  const data::Dataset test = data::make_synthetic(120, 3, 32, 3, 2);
  model::ContrastiveModel net = small_model();
  dist::Communicator comm;
  const LinearEvalResult r =
      linear_evaluation(net, comm, train, test, data::DatasetKind::Synthetic, kOptions, torch::kCPU);
  EXPECT_EQ(r.train_images, 300);
  EXPECT_EQ(r.test_images, 120);
  EXPECT_GE(r.top1, 0.9);
  EXPECT_GE(r.train_top1, 0.9);
  EXPECT_DOUBLE_EQ(r.top5, 1.0);  // 3 classes: always in the top 5

  // The same images with labels drawn independently of them: the test accuracy stays near chance
  // (1/3), so the figure above measures the features, not the protocol.
  data::Dataset noisy_train = train, noisy_test = test;
  torch::manual_seed(123);
  noisy_train.labels = torch::randint(0, 3, {train.size()}, torch::kLong);
  noisy_test.labels = torch::randint(0, 3, {test.size()}, torch::kLong);
  const LinearEvalResult noise = linear_evaluation(net, comm, noisy_train, noisy_test,
                                                   data::DatasetKind::Synthetic, kOptions, torch::kCPU);
  EXPECT_LT(noise.top1, 0.55);
}

TEST(LinearEval, SameResultOnOneProcessAndOnEveryRank) {
  const data::Dataset train = data::make_synthetic(90, 3, 32, 3, 3);
  const data::Dataset test = data::make_synthetic(30, 3, 32, 3, 4);
  model::ContrastiveModel net = small_model();
  dist::Communicator comm;
  dist::Communicator alone(MPI_COMM_SELF);
  const LinearEvalOptions o = LinearEvalOptions().epochs(5).batch_size(16).seed(2);
  const LinearEvalResult all =
      linear_evaluation(net, comm, train, test, data::DatasetKind::Synthetic, o, torch::kCPU);
  const LinearEvalResult one =
      linear_evaluation(net, alone, train, test, data::DatasetKind::Synthetic, o, torch::kCPU);
  EXPECT_NEAR(all.top1, one.top1, 1.0 / 30 + 1e-9);  // at most one test image may round differently
  EXPECT_NEAR(all.train_top1, one.train_top1, 1.0 / 90 + 1e-9);
}

TEST(LinearEval, TheFeaturesScaleDoesNotMatter) {
  // The probe standardises its inputs: features a thousand times smaller (the last BatchNorm's scale
  // and shift divided, which ReLU and pooling pass on) give the classifier the same inputs. Without
  // that, 60 epochs of Adam on such features stay near chance.
  const data::Dataset train = data::make_synthetic(300, 3, 32, 3, 1);
  const data::Dataset test = data::make_synthetic(120, 3, 32, 3, 2);
  model::ContrastiveModel net = small_model(), tiny = small_model();
  {
    torch::NoGradGuard no_grad;
    int scaled = 0;
    for (auto& p : tiny->named_parameters())
      if (p.key().rfind("encoder.body.7.", 0) == 0) p.value().mul_(1e-3), ++scaled;
    ASSERT_EQ(scaled, 2) << "the small encoder's last BatchNorm moved; update the test";
  }
  dist::Communicator comm;
  const LinearEvalResult plain =
      linear_evaluation(net, comm, train, test, data::DatasetKind::Synthetic, kOptions, torch::kCPU);
  const LinearEvalResult small =
      linear_evaluation(tiny, comm, train, test, data::DatasetKind::Synthetic, kOptions, torch::kCPU);
  EXPECT_GE(small.top1, 0.9);
  EXPECT_NEAR(small.top1, plain.top1, 1.0 / 120 + 1e-9);
  EXPECT_NEAR(small.train_top1, plain.train_top1, 1.0 / 300 + 1e-9);
}

TEST(LinearEval, RawPixelsNeedNoEncoder) {
  const data::Dataset train = data::make_synthetic(300, 3, 32, 3, 1);
  const data::Dataset test = data::make_synthetic(120, 3, 32, 3, 2);
  model::ContrastiveModel none{nullptr};
  dist::Communicator comm;
  const LinearEvalResult r = linear_evaluation(none, comm, train, test, data::DatasetKind::Synthetic,
                                               LinearEvalOptions(kOptions).input(ProbeInput::Pixels), torch::kCPU);
  EXPECT_EQ(r.input_dim, 3 * 32 * 32);
  EXPECT_GE(r.top1, 0.9);
  // The encoder protocols need an encoder.
  EXPECT_THROW(linear_evaluation(none, comm, train, test, data::DatasetKind::Synthetic, kOptions, torch::kCPU), Error);
}

TEST(LinearEval, AugmentedViewsLearnTheClassesAndAgreeAcrossRanks) {
  // Smaller than the tests above: every epoch embeds the train images again.
  const data::Dataset train = data::make_synthetic(160, 3, 32, 3, 1);
  const data::Dataset test = data::make_synthetic(120, 3, 32, 3, 2);
  model::ContrastiveModel net = small_model();
  dist::Communicator comm;
  const LinearEvalOptions augmented =
      LinearEvalOptions(kOptions).input(ProbeInput::Augmented).epochs(20).batch_size(32);
  const LinearEvalResult r =
      linear_evaluation(net, comm, train, test, data::DatasetKind::Synthetic, augmented, torch::kCPU);
  EXPECT_EQ(r.input_dim, net->encoder->feature_dim());
  EXPECT_GE(r.top1, 0.8);  // crops and flips keep the class's brightness shift (chance: 1/3)
  // Each rank embeds a share of every batch: the classifier is the one process would train.
  dist::Communicator alone(MPI_COMM_SELF);
  const LinearEvalOptions short_run = LinearEvalOptions(augmented).epochs(2);
  const LinearEvalResult all =
      linear_evaluation(net, comm, train, test, data::DatasetKind::Synthetic, short_run, torch::kCPU);
  const LinearEvalResult one =
      linear_evaluation(net, alone, train, test, data::DatasetKind::Synthetic, short_run, torch::kCPU);
  EXPECT_NEAR(all.top1, one.top1, 1.0 / 120 + 1e-9);
  EXPECT_NEAR(all.train_top1, one.train_top1, 1.0 / 160 + 1e-9);
  EXPECT_THROW(linear_evaluation(net, comm, train, test, data::DatasetKind::Synthetic,
                                 LinearEvalOptions(augmented).crop_scale_min(0), torch::kCPU),
               Error);
}

TEST(LinearEval, BadInputsAreErrors) {
  const data::Dataset train = data::make_synthetic(20, 3, 32, 2, 1);
  model::ContrastiveModel net = small_model();
  dist::Communicator comm;
  EXPECT_THROW(linear_evaluation(net, comm, train, train, data::DatasetKind::Synthetic,
                                 LinearEvalOptions().epochs(0), torch::kCPU),
               Error);
  EXPECT_THROW(linear_evaluation(net, comm, train, train, data::DatasetKind::Synthetic,
                                 LinearEvalOptions().lr(0), torch::kCPU),
               Error);
  data::Dataset unlabeled = train;
  unlabeled.labels = torch::full({train.size()}, -1, torch::kLong);
  try {
    linear_evaluation(net, comm, unlabeled, train, data::DatasetKind::Synthetic,
                      LinearEvalOptions().epochs(1), torch::kCPU);
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a labeled train split"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hcl::eval
