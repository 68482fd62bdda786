// The kNN monitor (eval/knn.h): the weighted vote on small cases worked out by hand, and the
// distributed evaluation on images that are nearest to their own class (top-1 100%), equal at
// every rank count to one process; the evaluation reads one value back to the host however many
// batches it scores.
#include <gtest/gtest.h>

#include "core/check.h"
#include "data/dataset.h"
#include "core/op_counts.h"
#include "tests/support/mpi_world.h"
#include "eval/knn.h"

namespace hcl::eval {
namespace {

TEST(KnnVotes, SmallCaseWithKnownAnswer) {
  HCL_ONLY_AT_RANKS(1);  // arithmetic on one process
  // Unit vectors in the plane: bank rows and their labels (3 classes).
  const torch::Tensor bank =
      torch::tensor({1.0, 0.0, 0.8, 0.6, 0.0, 1.0, -1.0, 0.0}, torch::kDouble).view({4, 2});
  const torch::Tensor bank_labels = torch::tensor({0, 0, 1, 2}, torch::kLong);
  // Query 0 = bank row 0: its 2 neighbours (sims 1, 0.8) are class 0: right.
  // Query 1 = bank row 2: neighbours class 1 (sim 1, weight e^2) and class 0 (sim 0.6, e^1.2): right.
  // Query 2 = (0.6, 0.8): neighbours class 0 (sim 0.96) and class 1 (sim 0.8); its label is 2,
  // which no neighbour has: wrong at top-1, right at top-5 (all 3 classes are in the top 5).
  const torch::Tensor queries = torch::tensor({1.0, 0.0, 0.0, 1.0, 0.6, 0.8}, torch::kDouble).view({3, 2});
  const torch::Tensor labels = torch::tensor({0, 1, 2}, torch::kLong);
  const auto [top1, top5] = knn_votes(queries, labels, bank, bank_labels, 3, /*k=*/2, /*temperature=*/0.5);
  EXPECT_EQ(top1, 2);
  EXPECT_EQ(top5, 3);
}

TEST(KnnVotes, SimilarityWeightsOutvoteAMajority) {
  HCL_ONLY_AT_RANKS(1);
  // Query (1, 0) with k = 3: one neighbour of class 2 at similarity 1 (weight e^10 at t = 0.1)
  // against two of class 0 at similarity 0 (weight 1 each): the weighted vote picks class 2.
  const torch::Tensor bank = torch::tensor({1.0, 0.0, 0.0, 1.0, 0.0, -1.0}, torch::kDouble).view({3, 2});
  const torch::Tensor bank_labels = torch::tensor({2, 0, 0}, torch::kLong);
  const torch::Tensor query = torch::tensor({1.0, 0.0}, torch::kDouble).view({1, 2});
  EXPECT_EQ(knn_votes(query, torch::tensor({2}, torch::kLong), bank, bank_labels, 3, 3, 0.1).first, 1);
  EXPECT_EQ(knn_votes(query, torch::tensor({0}, torch::kLong), bank, bank_labels, 3, 3, 0.1).first, 0);
  // k larger than the bank uses the whole bank.
  EXPECT_EQ(knn_votes(query, torch::tensor({2}, torch::kLong), bank, bank_labels, 3, 50, 0.1).first, 1);
}

// 21 synthetic images whose class brightens its own channel (3 classes of 7), an untrained small
// encoder (the same on every rank: seeded) and the evaluation transform.
struct SeparableImages {
  data::Dataset images = data::make_synthetic(21, 3, 28, 3, 5);
  model::ContrastiveModel net = [] {
    torch::manual_seed(0);
    return model::ContrastiveModel(model::ModelOptions().encoder(model::EncoderOptions().arch(model::Arch::Small)));
  }();
  data::TwoViewAugmenter transform{data::AugmentOptions().output_size(28), 0};
};

TEST(KnnEvaluate, ImagesFindTheirOwnClassOnAnyRankCount) {
  // Synthetic images whose class brightens its own channel: even an untrained encoder puts an
  // image nearer to its own class than to the others, so with the test images in the bank and
  // k = 3 (7 images per class) every vote is right, at every rank count (21 images: uneven shares
  // at 2 and 4 ranks).
  const SeparableImages f;
  const data::Dataset& images = f.images;
  model::ContrastiveModel net = f.net;
  const data::TwoViewAugmenter& transform = f.transform;
  dist::Communicator comm;
  const KnnResult r =
      knn_evaluate(net, comm, transform, images, images, KnnOptions().k(3).batch(4), torch::kCPU);
  EXPECT_EQ(r.bank, 21);
  EXPECT_EQ(r.test, 21);
  EXPECT_DOUBLE_EQ(r.top1, 1.0);
  EXPECT_DOUBLE_EQ(r.top5, 1.0);

  // Limited sizes: a seeded subset of each split, the same on W ranks as in one process.
  const KnnOptions limited = KnnOptions().k(3).bank_size(15).test_size(9).batch(4).seed(3);
  const KnnResult all_ranks = knn_evaluate(net, comm, transform, images, images, limited, torch::kCPU);
  dist::Communicator alone(MPI_COMM_SELF);
  const KnnResult one = knn_evaluate(net, alone, transform, images, images, limited, torch::kCPU);
  EXPECT_EQ(all_ranks.bank, 15);
  EXPECT_EQ(all_ranks.test, 9);
  EXPECT_DOUBLE_EQ(all_ranks.top1, one.top1);
  EXPECT_DOUBLE_EQ(all_ranks.top5, one.top5);
}

TEST(KnnEvaluate, OneHostReadHoweverManyBatches) {
  // 21 test images in batches of 2 (up to 11 batches per rank) or of 32 (one batch): the vote
  // counts stay on the device and the result is read once, at the end.
  const SeparableImages f;
  const data::Dataset& images = f.images;
  model::ContrastiveModel net = f.net;
  const data::TwoViewAugmenter& transform = f.transform;
  dist::Communicator comm;
  for (int64_t batch : {2, 32}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    KnnResult r;
    const auto ops = count_ops(
        [&] { r = knn_evaluate(net, comm, transform, images, images, KnnOptions().k(3).batch(batch), torch::kCPU); });
    EXPECT_EQ(host_reads(ops), 1);
    EXPECT_DOUBLE_EQ(r.top1, 1.0);  // the same answer as above: the packed read unpacks right
    EXPECT_DOUBLE_EQ(r.top5, 1.0);
  }
}

TEST(KnnVotes, CountsOnTheDeviceEqualTheHostVote) {
  HCL_ONLY_AT_RANKS(1);
  torch::manual_seed(4);
  const torch::Tensor bank = torch::nn::functional::normalize(torch::randn({50, 8}),
                                                              torch::nn::functional::NormalizeFuncOptions().dim(1));
  const torch::Tensor bank_labels = torch::randint(0, 7, {50}, torch::kLong);
  const torch::Tensor queries = bank.narrow(0, 0, 20) + 0.1 * torch::randn({20, 8});
  const torch::Tensor labels = bank_labels.narrow(0, 0, 20);
  int64_t reads = -1;
  torch::Tensor counts;
  reads = host_reads(count_ops([&] { counts = knn_vote_counts(queries, labels, bank, bank_labels, 7, 5, 0.5); }));
  EXPECT_EQ(reads, 0);
  EXPECT_EQ(counts.scalar_type(), torch::kLong);
  const auto [top1, top5] = knn_votes(queries, labels, bank, bank_labels, 7, 5, 0.5);
  EXPECT_EQ(counts[0].item<int64_t>(), top1);
  EXPECT_EQ(counts[1].item<int64_t>(), top5);
  EXPECT_GT(top1, 0);
  EXPECT_GE(top5, top1);
}

}  // namespace
}  // namespace hcl::eval
