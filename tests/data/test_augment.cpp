// Tests of the batched two-view augmentation: keyed determinism, crop bounds, exact flips, jitter
// bounds, grayscale, hue against torchvision's formulas, output shape, dtype, range and memory
// format, the batched views() against the per-view calls, the prefetcher's parameters, and what one
// batch costs: the ATen ops of augmenting it (under a budget) and no host reads.
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>

#include "core/check.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/prefetch.h"
#include "data/sampler.h"
#include "core/op_counts.h"

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

// The batched views() are the two per-view calls, view-major, in either memory format.
TEST(Augment, BatchedViewsEqualThePerViewCalls) {
  for (int64_t channels : {1, 3}) {
    SCOPED_TRACE(channels);
    const Dataset d = make_synthetic(24, channels, 32, 4, 5);
    const torch::Tensor idx = torch::arange(100, 124, torch::kLong);
    const TwoViewAugmenter aug(AugmentOptions().blur_p(0.5).output_size(24), 9);
    const torch::Tensor both = aug.views(d.images, idx, 2);
    EXPECT_EQ(both.sizes(), (std::vector<int64_t>{48, channels, 24, 24}));
    EXPECT_TRUE(both.is_contiguous());
    EXPECT_TRUE(torch::allclose(both.narrow(0, 0, 24), aug.view(d.images, idx, 2, 0), 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(both.narrow(0, 24, 24), aug.view(d.images, idx, 2, 1), 1e-5, 1e-6));
    const torch::Tensor last = aug.views(d.images, idx, 2, torch::MemoryFormat::ChannelsLast);
    EXPECT_TRUE(last.is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(torch::equal(last, both));
    // sample_views + apply_views is views.
    const torch::Tensor params = aug.sample_views(idx, 2, channels, 32, 32);
    EXPECT_EQ(params.scalar_type(), torch::kFloat);
    EXPECT_EQ(params.numel(), 24 * 2 * aug.packed_width() + aug.packed_constants(channels));
    EXPECT_TRUE(torch::equal(aug.apply_views(d.images, params), both));
    EXPECT_THROW(aug.apply_views(d.images.narrow(0, 0, 23), params), Error);
  }
}

// torchvision's adjust_hue (RGB -> HSV, shift, HSV -> RGB through its sector table), per image.
torch::Tensor torchvision_hue(const torch::Tensor& rgb, const torch::Tensor& shift) {
  const torch::Tensor r = rgb.select(1, 0), g = rgb.select(1, 1), b = rgb.select(1, 2);
  const torch::Tensor maxc = torch::max(torch::max(r, g), b), minc = torch::min(torch::min(r, g), b);
  const torch::Tensor equal = maxc.eq(minc);
  const torch::Tensor ones = torch::ones_like(maxc);
  const torch::Tensor range = maxc - minc;
  const torch::Tensor s = range / torch::where(equal, ones, maxc);
  const torch::Tensor divisor = torch::where(equal, ones, range);
  const torch::Tensor rc = (maxc - r) / divisor, gc = (maxc - g) / divisor, bc = (maxc - b) / divisor;
  const torch::Tensor is_r = maxc.eq(r), is_g = maxc.eq(g).logical_and(is_r.logical_not());
  const torch::Tensor is_b = is_r.logical_not().logical_and(maxc.ne(g));
  torch::Tensor h = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc);
  h = torch::fmod(h / 6.0 + 1.0, 1.0);
  h = torch::remainder(h + shift.view({-1, 1, 1}), 1.0);
  const torch::Tensor i6 = torch::floor(h * 6.0);
  const torch::Tensor f = h * 6.0 - i6;
  const torch::Tensor i = torch::remainder(i6, 6.0).to(torch::kLong);
  const torch::Tensor v = maxc;
  const torch::Tensor p = (v * (1.0 - s)).clamp(0.0, 1.0);
  const torch::Tensor q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
  const torch::Tensor t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
  const torch::Tensor sector = i.unsqueeze(1).eq(torch::arange(6, i.options()).view({1, 6, 1, 1}));
  auto pick = [&](std::initializer_list<torch::Tensor> choices) { return (sector * torch::stack(choices, 1)).sum(1); };
  return torch::stack({pick({v, q, p, p, t, v}), pick({t, v, v, q, p, p}), pick({p, p, t, v, v, q})}, 1);
}

// Hue alone (full crops, no flip, no other colour change): torchvision's function of the drawn
// shift, also where channels tie and for grey pixels.
TEST(Augment, HueRotationIsTorchvisions) {
  const Dataset d = make_synthetic(64, 3, 16, 4, 6);
  torch::Tensor images = d.images.clone();
  images.narrow(0, 0, 4).select(1, 1).copy_(images.narrow(0, 0, 4).select(1, 0));  // r = g
  images.narrow(0, 4, 2).select(1, 2).copy_(images.narrow(0, 4, 2).select(1, 0));  // r = b
  images.narrow(0, 6, 2).copy_(images.narrow(0, 6, 2).select(1, 0).unsqueeze(1).expand({2, 3, 16, 16}));
  const auto opts = plain().output_size(16).scale_min(1).ratio_min(1).ratio_max(1).flip_p(0).grayscale_p(0)
                        .jitter_p(1).brightness(0).contrast(0).saturation(0).hue(0.5);
  const TwoViewAugmenter aug(opts, 4);
  const torch::Tensor idx = torch::arange(64, torch::kLong);
  const AugmentParams p = aug.sample(idx, 0, 1, 16, 16);
  const torch::Tensor expected =
      torchvision_hue(images.to(torch::kFloat) / 255, p.factors.select(1, 3).to(torch::kFloat));
  EXPECT_TRUE(torch::allclose(aug.view(images, idx, 0, 1), expected, 1e-5, 2e-6));
  EXPECT_TRUE(torch::allclose(aug.views(images, idx, 0).narrow(0, 64, 64), expected, 1e-5, 2e-6));
}

// The prefetcher draws each batch's view parameters on its thread, as sample_views would.
TEST(Augment, PrefetcherDrawsTheViewParameters) {
  const Dataset d = make_synthetic(40, 3, 32, 4, 7);
  DistributedSampler sampler(40, 8, 0, 1, 3);
  const TwoViewAugmenter aug(AugmentOptions(), 5);
  BatchPrefetcher prefetcher(d, sampler, /*pin_memory=*/false, aug);
  for (int64_t step = 0; step < 3; ++step) {
    const HostBatch b = prefetcher.get(1, step);
    ASSERT_TRUE(b.view_params.defined());
    EXPECT_TRUE(torch::equal(b.view_params, aug.sample_views(b.indices, 1, 3, 32, 32)));
  }
  BatchPrefetcher without(d, sampler, false);
  EXPECT_FALSE(without.get(0, 0).view_params.defined());
}

// The budget is on the ops the augmentation calls (depth 0). LibTorch 1.13 records 70 for the
// default options, 37 of which launch kernels: the upload (1), uint8 -> float (1), the grid (two
// multiply-adds and a cat) and grid_sample (4), brightness (2), contrast (grey, mean, lerp, clamp:
// 6), saturation (4), hue (16: max, min, two rolls, the hue and its rotation), grayscale (3), the
// normalisation into the output (1); the other 33 are views of the packed parameters and shapes.
// Blur adds 6 kernels (the per-plane taps, two reflection pads, two grouped convolutions) and
// views: 83 and 43. The budgets leave about 20% headroom, so a new op or two passes, but a
// per-image or per-view loop does not: the older path called 360 ops for the two views (418 with
// blur), and its affine_grid ran one matrix product per image on a CPU (2,050 calls with LibTorch's
// nested ones at 64 images, growing with the batch).
TEST(Augment, OneBatchInAFixedBudgetOfOpsWithoutHostReads) {
  for (bool blur : {false, true}) {
    SCOPED_TRACE(blur ? "blur" : "no blur");
    const TwoViewAugmenter aug(AugmentOptions().blur_p(blur ? 0.5 : 0.0), 1);
    std::map<int64_t, OpCounts> by_batch;
    for (int64_t n : {8, 64}) {
      const Dataset d = make_synthetic(n, 3, 32, 4, 8);
      const torch::Tensor idx = torch::arange(n, torch::kLong);
      const torch::Tensor params = aug.sample_views(idx, 0, 3, 32, 32);
      aug.apply_views(d.images, params);  // warm-up
      const OpCounts counts =
          count_ops([&] { aug.apply_views(d.images, params, torch::MemoryFormat::ChannelsLast); });
      by_batch[n] = counts;
      EXPECT_EQ(counts.all.count("aten::_local_scalar_dense"), 0u);
      EXPECT_EQ(counts.all.count("aten::item"), 0u);
      // Sampling on the host is no ATen work beyond allocating the tensor.
      const OpCounts sampling = count_ops([&] { aug.sample_views(idx, 0, 3, 32, 32); });
      EXPECT_LE(sampling.called_total(), 3);
      EXPECT_EQ(sampling.all.count("aten::_local_scalar_dense"), 0u);
      EXPECT_EQ(sampling.all.count("aten::item"), 0u);
    }
    EXPECT_EQ(by_batch[8].all_total(), by_batch[64].all_total()) << "ops must not grow with the batch";
    const OpCounts& c = by_batch[64];
    const int64_t budget = blur ? 100 : 85, kernel_budget = blur ? 58 : 48;
    EXPECT_LE(c.called_total(), budget);
    EXPECT_LE(c.kernels(), kernel_budget);
    std::cout << "two-view augmentation of a batch (" << (blur ? "with" : "without") << " blur): "
              << c.called_total() << " ATen ops called (budget " << budget << "), " << c.kernels()
              << " of them kernels (budget " << kernel_budget << "), " << c.all_total()
              << " with LibTorch's nested calls\n";
    if (std::getenv("HCL_PRINT_OPS") != nullptr)
      for (const auto& entry : c.called) std::cout << "  " << entry.first << " " << entry.second << "\n";
  }
}

}  // namespace
}  // namespace hcl::data
