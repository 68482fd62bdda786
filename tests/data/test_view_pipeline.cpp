// data/view_pipeline.h: the views handed out are the ones the augmenter makes for the same images
// (across an epoch boundary and after a jump), an error in a batch made ahead surfaces at the step
// that needs it and not before, and on CUDA the views made on the side stream arrive intact on a
// busy compute stream.
#include <gtest/gtest.h>

#include <optional>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "data/view_pipeline.h"

namespace hcl::data {
namespace {

// What a plain loop without look-ahead makes for (epoch, step), on `device`.
torch::Tensor plain_views(const Dataset& d, DistributedSampler& sampler, const TwoViewAugmenter& augmenter,
                          int64_t epoch, int64_t step, const torch::Device& device) {
  const torch::Tensor indices = sampler.rank_indices(epoch, step);
  const auto format = device.is_cuda() ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  return augmenter.views(d.images.index_select(0, indices).to(device), indices, epoch, format);
}

TEST(ViewPipeline, ViewsEqualThoseOfAPlainLoop) {
  const Dataset d = make_synthetic(40, 3, 16, 4, 7);
  const TwoViewAugmenter augmenter(AugmentOptions().output_size(12), 11);
  DistributedSampler sampler(d.size(), 6, /*rank=*/1, /*world_size=*/2, /*seed=*/5);
  DistributedSampler reference(d.size(), 6, 1, 2, 5);
  ViewPipeline pipeline(d, sampler, augmenter, torch::kCPU);
  ASSERT_EQ(sampler.steps_per_epoch(), 3);  // the loop crosses an epoch boundary
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    for (int64_t step = 0; step < 3; ++step) {
      const torch::Tensor v = pipeline.views(epoch, step);
      EXPECT_EQ(v.sizes(), (std::vector<int64_t>{12, 3, 12, 12}));  // both views of 6 images
      EXPECT_TRUE(torch::equal(v, plain_views(d, reference, augmenter, epoch, step, torch::kCPU)))
          << epoch << " " << step;
    }
  }
  // A jump (as a resume makes): made on the spot, then the look-ahead continues from there.
  EXPECT_TRUE(torch::equal(pipeline.views(7, 1), plain_views(d, reference, augmenter, 7, 1, torch::kCPU)));
  EXPECT_TRUE(torch::equal(pipeline.views(7, 2), plain_views(d, reference, augmenter, 7, 2, torch::kCPU)));
}

TEST(ViewPipeline, AnErrorInABatchMadeAheadSurfacesAtItsStep) {
  // A dataset of 8 images behind a sampler of 16: a step that draws an index >= 8 cannot be loaded.
  // Find a seed whose step 0 loads and whose step 1 does not.
  const Dataset d = make_synthetic(8, 1, 8, 2, 3);
  std::optional<uint64_t> seed;
  for (uint64_t s = 0; s < 10000 && !seed; ++s) {
    DistributedSampler probe(16, 4, 0, 1, s);
    if (probe.rank_indices(0, 0).max().item<int64_t>() < 8 && probe.rank_indices(0, 1).max().item<int64_t>() >= 8)
      seed = s;
  }
  ASSERT_TRUE(seed.has_value());
  const TwoViewAugmenter augmenter(AugmentOptions().output_size(8), 0);
  DistributedSampler sampler(16, 4, 0, 1, *seed), reference(16, 4, 0, 1, *seed);
  ViewPipeline pipeline(d, sampler, augmenter, torch::kCPU);
  EXPECT_NO_THROW(pipeline.views(0, 0));  // step 1 is made ahead here, and fails
  EXPECT_THROW(pipeline.views(0, 1), std::exception);
  EXPECT_TRUE(torch::equal(pipeline.views(0, 0), plain_views(d, reference, augmenter, 0, 0, torch::kCPU)));
}

TEST(ViewPipeline, CudaViewsFromTheSideStreamArriveIntact) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Device cuda(torch::kCUDA, 0);
  const Dataset d = make_synthetic(512, 3, 32, 10, 1);
  const TwoViewAugmenter augmenter(AugmentOptions().output_size(32), 3);
  DistributedSampler sampler(d.size(), 128, 0, 1, 9);
  DistributedSampler reference(d.size(), 128, 0, 1, 9);
  ViewPipeline pipeline(d, sampler, augmenter, cuda);
  const torch::Tensor busy = torch::randn({4096, 4096}, torch::TensorOptions().device(cuda));
  std::vector<torch::Tensor> got, expected;
  for (int64_t step = 0; step < 10; ++step) {  // crosses an epoch boundary (4 steps per epoch)
    const int64_t epoch = step / 4, in_epoch = step % 4;
    // The compute stream is kept busy before it copies the views, so a missing wait, or the side
    // stream reusing their memory too early, would show up as different values.
    for (int i = 0; i < 4; ++i) busy.mm(busy);
    got.push_back(pipeline.views(epoch, in_epoch).clone());
    expected.push_back(plain_views(d, reference, augmenter, epoch, in_epoch, cuda));
  }
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], expected[i])) << i;
}

}  // namespace
}  // namespace hcl::data
