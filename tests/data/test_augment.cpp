// Tests of the batched two-view augmentation: keyed determinism, crop bounds, exact flips, jitter
// bounds, grayscale, output shape, dtype and range.
#include <gtest/gtest.h>

#include "core/check.h"
#include "data/augment.h"
#include "data/dataset.h"

namespace hcl::data {
namespace {

AugmentOptions plain() {  // no normalisation shift: outputs stay in [0, 1]
  return AugmentOptions().mean({0.0, 0.0, 0.0}).stddev({1.0, 1.0, 1.0});
}

TEST(Augment, ViewsAreKeyedByImageNotByBatch) {
  const Dataset d = make_synthetic(64, 3, 32, 10, 1);
  const TwoViewAugmenter aug(AugmentOptions().blur_p(0.5), 7);
  const torch::Tensor a_idx = torch::arange(0, 16, torch::kLong);
  const torch::Tensor b_idx = torch::arange(8, 40, torch::kLong).flip(0);  // image 8..15 elsewhere
  const torch::Tensor a = aug.view(d.images.index_select(0, a_idx), a_idx, 3, 0);
  const torch::Tensor b = aug.view(d.images.index_select(0, b_idx), b_idx, 3, 0);
  for (int64_t image = 8; image < 16; ++image) {
    const int64_t pos_b = 39 - image;
    EXPECT_TRUE(torch::allclose(a[image], b[pos_b], 1e-5, 1e-6)) << "image " << image;
  }
  EXPECT_FALSE(torch::allclose(a, aug.view(d.images.index_select(0, a_idx), a_idx, 3, 1))) << "views";
  EXPECT_FALSE(torch::allclose(a, aug.view(d.images.index_select(0, a_idx), a_idx, 4, 0))) << "epochs";
  EXPECT_FALSE(torch::allclose(a, TwoViewAugmenter(AugmentOptions().blur_p(0.5), 8)
                                      .view(d.images.index_select(0, a_idx), a_idx, 3, 0)))
      << "seeds";
}

TEST(Augment, CropBoxesRespectScaleAndRatio) {
  const TwoViewAugmenter aug(AugmentOptions(), 3);
  const AugmentParams p = aug.sample(torch::arange(4000, torch::kLong), 0, 0, 32, 40);
  const torch::Tensor x0 = p.crop.select(1, 0), y0 = p.crop.select(1, 1);
  const torch::Tensor w = p.crop.select(1, 2), h = p.crop.select(1, 3);
  EXPECT_TRUE(x0.ge(0).all().item<bool>() && (x0 + w).le(40).all().item<bool>());
  EXPECT_TRUE(y0.ge(0).all().item<bool>() && (y0 + h).le(32).all().item<bool>());
  // Rounding a box to whole pixels moves its area and ratio by at most about a pixel.
  const torch::Tensor area = w * h / (32.0 * 40.0);
  const torch::Tensor slack_area = (w + h + 1) / (32.0 * 40.0);
  EXPECT_TRUE((area + slack_area).ge(0.08).all().item<bool>());
  EXPECT_TRUE(area.le(1.0).all().item<bool>());
  const torch::Tensor ratio = w / h;
  EXPECT_TRUE(ratio.ge(0.75 * (1 - 1.0 / 4)).all().item<bool>());
  EXPECT_TRUE(ratio.le(4.0 / 3 * (1 + 1.0 / 4)).all().item<bool>());
  EXPECT_GT(area.std().item<double>(), 0.1) << "scales must vary";
  const double flipped = p.flip.to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(flipped, 0.5, 0.05);
  EXPECT_NEAR(p.jitter.to(torch::kDouble).mean().item<double>(), 0.8, 0.05);
  EXPECT_NEAR(p.gray.to(torch::kDouble).mean().item<double>(), 0.2, 0.05);
}

TEST(Augment, JitterFactorsWithinBounds) {
  const TwoViewAugmenter aug(AugmentOptions(), 3);
  const AugmentParams p = aug.sample(torch::arange(2000, torch::kLong), 1, 1, 32, 32);
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_GE(p.factors.select(1, k).min().item<double>(), 0.6);
    EXPECT_LE(p.factors.select(1, k).max().item<double>(), 1.4);
  }
  EXPECT_GE(p.factors.select(1, 3).min().item<double>(), -0.1);
  EXPECT_LE(p.factors.select(1, 3).max().item<double>(), 0.1);
  EXPECT_TRUE(p.blur_sigma.eq(0).all().item<bool>()) << "blur is off by default";
}

TEST(Augment, FlipsAreExactMirrors) {
  const Dataset d = make_synthetic(8, 3, 16, 4, 2);
  const torch::Tensor idx = torch::arange(8, torch::kLong);
  // Full-image crops, no colour changes: the only difference is the flip.
  const auto opts = plain().output_size(16).scale_min(1).ratio_min(1).ratio_max(1).jitter_p(0).grayscale_p(0);
  const torch::Tensor straight = TwoViewAugmenter(AugmentOptions(opts).flip_p(0), 1).view(d.images, idx, 0, 0);
  const torch::Tensor mirrored = TwoViewAugmenter(AugmentOptions(opts).flip_p(1), 1).view(d.images, idx, 0, 0);
  EXPECT_TRUE(torch::allclose(straight, d.images.to(torch::kFloat) / 255, 0, 1e-5));
  EXPECT_TRUE(torch::allclose(mirrored, straight.flip(3), 0, 1e-5));
}

TEST(Augment, ColourJitterWithZeroRangesIsTheIdentity) {
  const Dataset d = make_synthetic(8, 3, 16, 4, 2);
  const auto opts = plain().output_size(16).scale_min(1).ratio_min(1).ratio_max(1).flip_p(0).grayscale_p(0)
                        .jitter_p(1).brightness(0).contrast(0).saturation(0).hue(0);
  const torch::Tensor v = TwoViewAugmenter(opts, 1).view(d.images, torch::arange(8, torch::kLong), 0, 0);
  EXPECT_TRUE(torch::allclose(v, d.images.to(torch::kFloat) / 255, 0, 1e-5));  // HSV round trip
}

TEST(Augment, GrayscaleRowsHaveEqualChannels) {
  const Dataset d = make_synthetic(8, 3, 32, 4, 2);
  const TwoViewAugmenter aug(plain().grayscale_p(1.0), 1);
  const torch::Tensor v = aug.view(d.images, torch::arange(8, torch::kLong), 0, 0);
  EXPECT_TRUE(torch::allclose(v.select(1, 0), v.select(1, 1)));
  EXPECT_TRUE(torch::allclose(v.select(1, 1), v.select(1, 2)));
}

TEST(Augment, OutputShapeDtypeAndRange) {
  for (int64_t channels : {1, 3}) {
    const Dataset d = make_synthetic(16, channels, 28, 4, 3);
    const auto opts = AugmentOptions().output_size(24).mean(std::vector<double>(channels, 0.0))
                          .stddev(std::vector<double>(channels, 1.0)).blur_p(1.0);
    const TwoViewAugmenter aug(opts, 1);
    const torch::Tensor v = aug.view(d.images, torch::arange(16, torch::kLong), 0, 1);
    EXPECT_EQ(v.sizes(), (std::vector<int64_t>{16, channels, 24, 24}));
    EXPECT_EQ(v.scalar_type(), torch::kFloat);
    EXPECT_GE(v.min().item<float>(), -1e-6);
    EXPECT_LE(v.max().item<float>(), 1 + 1e-6);
    const torch::Tensor e = aug.evaluation(d.images);
    EXPECT_EQ(e.sizes(), (std::vector<int64_t>{16, channels, 24, 24}));
  }
  // Normalisation: (x - mean) / std.
  const Dataset d = make_synthetic(4, 1, 8, 2, 3);
  const TwoViewAugmenter norm(AugmentOptions().output_size(8).mean({0.25}).stddev({0.5}), 1);
  EXPECT_TRUE(torch::allclose(norm.evaluation(d.images), (d.images.to(torch::kFloat) / 255 - 0.25) / 0.5));
}

TEST(Augment, BadOptionsAreErrors) {
  EXPECT_THROW(TwoViewAugmenter(AugmentOptions().scale_min(0), 1), Error);
  EXPECT_THROW(TwoViewAugmenter(AugmentOptions().scale_min(0.5).scale_max(0.4), 1), Error);
  EXPECT_THROW(TwoViewAugmenter(AugmentOptions().flip_p(1.5), 1), Error);
  EXPECT_THROW(TwoViewAugmenter(AugmentOptions().hue(0.7), 1), Error);
  EXPECT_THROW(TwoViewAugmenter(AugmentOptions().mean({0.5}).stddev({0.0}), 1), Error);
  const TwoViewAugmenter three(AugmentOptions().mean({0.5, 0.5, 0.5}).stddev({1, 1, 1}), 1);
  EXPECT_THROW(three.evaluation(make_synthetic(2, 1, 32, 2, 1).images), Error);
}

}  // namespace
}  // namespace hcl::data
