// Multi-rank test of the differentiable all-gather: the gradient of a scalar function of the
// gathered tensor equals the same function's gradient evaluated in one process.
#include <gtest/gtest.h>

#include "dist/gather.h"
#include "tests/support/golden.h"
#include "tests/support/mpi_world.h"

namespace hcl::dist {
namespace {

// Rank q's local block and its rank-specific loss weights: the same on every process.
torch::Tensor block(int q) {
  torch::manual_seed(100 + q);
  return torch::randn({3, 4}, torch::kDouble);
}
torch::Tensor weights(int q, int world) {
  torch::manual_seed(200 + q);
  return torch::randn({3 * world, 4}, torch::kDouble);
}
// A rank's loss: a non-linear function of the whole gathered tensor.
torch::Tensor rank_loss(const torch::Tensor& gathered, int q, int world) {
  return (weights(q, world) * gathered.sin()).sum() + gathered.square().sum() * (q + 1);
}

TEST(Gather, GradientIsTheSumOverRanksOfEveryRanksLoss) {
  Communicator comm;
  const int w = test::world_size(), r = test::world_rank();
  torch::Tensor local = block(r).requires_grad_(true);
  const torch::Tensor gathered = all_gather_with_grad(comm, local);
  rank_loss(gathered, r, w).backward();

  // One process: all blocks, the sum of every rank's loss.
  std::vector<torch::Tensor> blocks;
  for (int q = 0; q < w; ++q) blocks.push_back(block(q).requires_grad_(true));
  const torch::Tensor all = torch::cat(blocks, 0);
  EXPECT_TRUE(torch::equal(all.detach(), gathered.detach()));
  torch::Tensor total = torch::zeros({}, torch::kDouble);
  for (int q = 0; q < w; ++q) total = total + rank_loss(all, q, w);
  total.backward();
  EXPECT_TRUE(test::close(local.grad(), blocks[r].grad(), 1e-12, 1e-14));
}

}  // namespace
}  // namespace hcl::dist
