// Tests of the distributed sampler: ranks are disjoint, their union is the permutation's prefix,
// and the global batch of a step does not depend on the number of ranks.
#include <gtest/gtest.h>

#include <set>

#include "core/check.h"
#include "data/sampler.h"

namespace hcl::data {
namespace {

TEST(Sampler, PermutationIsAPermutationAndDependsOnTheKey) {
  const auto p = permutation(1000, 42);
  EXPECT_EQ(std::set<int64_t>(p.begin(), p.end()).size(), 1000u);
  EXPECT_EQ(p, permutation(1000, 42));
  EXPECT_NE(p, permutation(1000, 43));
}

TEST(Sampler, RanksAreDisjointAndCoverThePermutationPrefix) {
  const int64_t n = 1003, b = 16;
  for (int w : {1, 2, 3, 4}) {
    SCOPED_TRACE(w);
    std::vector<DistributedSampler> ranks;
    for (int r = 0; r < w; ++r) ranks.emplace_back(n, b, r, w, 9);
    const int64_t steps = ranks[0].steps_per_epoch();
    EXPECT_EQ(steps, n / (w * b));
    std::vector<int64_t> seen;
    for (int64_t step = 0; step < steps; ++step)
      for (auto& s : ranks) {
        const torch::Tensor idx = s.rank_indices(3, step);
        seen.insert(seen.end(), idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + b);
      }
    EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), seen.size()) << "ranks overlap";
    // Rank-major concatenation of every step is the permutation's first steps*W*B entries.
    const auto perm = permutation(n, mix64(9 ^ mix64(3)));
    EXPECT_EQ(seen, std::vector<int64_t>(perm.begin(), perm.begin() + steps * w * b));
  }
}

TEST(Sampler, GlobalBatchOfAStepIsTheSameForAnyWorldSize) {
  const int64_t n = 500, global = 64;
  DistributedSampler one(n, global, 0, 1, 5);
  for (int w : {2, 4}) {
    for (int64_t step : {0, 3, 6}) {
      std::vector<torch::Tensor> parts;
      for (int r = 0; r < w; ++r) parts.push_back(DistributedSampler(n, global / w, r, w, 5).rank_indices(2, step));
      EXPECT_TRUE(torch::equal(torch::cat(parts), one.rank_indices(2, step))) << "W " << w << " step " << step;
    }
  }
  EXPECT_FALSE(torch::equal(one.rank_indices(0, 0), one.rank_indices(1, 0))) << "epochs must differ";
}

TEST(Sampler, WithoutDropLastTheLastBatchWrapsAround) {
  DistributedSampler s(10, 2, 1, 2, 1, /*drop_last=*/false);
  EXPECT_EQ(s.steps_per_epoch(), 3);
  const torch::Tensor last = s.global_indices(0, 2);
  const auto perm = permutation(10, mix64(1 ^ mix64(0)));
  EXPECT_EQ(last[2].item<int64_t>(), perm[0]);
}

TEST(Sampler, BadArgumentsAreErrors) {
  EXPECT_THROW(DistributedSampler(10, 0, 0, 1, 1), Error);
  EXPECT_THROW(DistributedSampler(10, 4, 0, 3, 1), Error);  // 12 > 10 images
  EXPECT_THROW(DistributedSampler(100, 4, 2, 2, 1), Error);
  DistributedSampler s(100, 10, 0, 1, 1);
  EXPECT_THROW(s.rank_indices(0, 10), Error);
}

}  // namespace
}  // namespace hcl::data
