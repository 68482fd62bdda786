// Multi-rank tests of dist::DataParallel and dist::SyncBatchNorm on the MPI backend.
#include <gtest/gtest.h>

#include "core/check.h"
#include "dist/data_parallel.h"
#include "dist/sync_batchnorm.h"
#include "tests/support/golden.h"
#include "tests/support/mpi_world.h"
#include "core/op_counts.h"

namespace hcl::dist {
namespace {

using test::close;

// Two linear layers; the second is used only when `use_second` (unused parameters).
struct TwoLayersImpl : torch::nn::Module {
  TwoLayersImpl() {
    first = register_module("first", torch::nn::Linear(6, 5));
    second = register_module("second", torch::nn::Linear(5, 3));
    to(torch::kDouble);
  }
  torch::Tensor forward(const torch::Tensor& x, bool use_second) {
    torch::Tensor h = torch::tanh(first(x));
    return use_second ? second(h) : h;
  }
  torch::nn::Linear first{nullptr}, second{nullptr};
};
TORCH_MODULE(TwoLayers);

torch::Tensor rank_input(int rank) {
  torch::manual_seed(50 + rank);
  return torch::randn({4, 6}, torch::kDouble);
}

TEST(DataParallel, BroadcastMakesReplicasEqualAndVerifyDetectsDifferences) {
  Communicator comm;
  torch::manual_seed(comm.rank());  // different initialisation on every rank
  TwoLayers net;
  DataParallel dp(comm, *net);
  if (comm.world_size() > 1) {
    try {
      dp.verify_replicas();
      FAIL() << "differing replicas not detected";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("parameter first.weight"), std::string::npos) << e.what();
    }
  }
  dp.broadcast_from_root();
  EXPECT_NO_THROW(dp.verify_replicas());
}

// Gradients averaged over ranks equal the average of every rank's gradient computed in one process;
// for every bucket size and both ways of running the buckets.
TEST(DataParallel, AveragesGradientsInBuckets) {
  Communicator comm;
  for (bool overlap : {true, false}) {
    for (int64_t bucket_bytes : {8, 100, 25 << 20}) {
      SCOPED_TRACE(::testing::Message() << "overlap " << overlap << " bucket " << bucket_bytes);
      torch::manual_seed(3);
      TwoLayers net;
      DataParallel dp(comm, *net, DataParallelOptions().bucket_bytes(bucket_bytes).overlap(overlap));
      if (comm.world_size() == 1) {
        EXPECT_EQ(dp.bucket_count(), 0);  // nothing to average at one rank
      } else if (bucket_bytes == 8) {
        EXPECT_EQ(dp.bucket_count(), 4);  // one per parameter
      } else if (bucket_bytes == 25 << 20) {
        EXPECT_EQ(dp.bucket_count(), 1);
      }
      dp.begin(true);
      net->forward(rank_input(comm.rank()), true).square().sum().backward();
      dp.finish();

      torch::manual_seed(3);
      TwoLayers reference;
      for (int q = 0; q < comm.world_size(); ++q)
        (reference->forward(rank_input(q), true).square().sum() / comm.world_size()).backward();
      const auto got = net->parameters(), want = reference->parameters();
      for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(close(got[i].grad(), want[i].grad(), 1e-12, 1e-15));
    }
  }
}

// The test switch that lets one GPU run the code of many: at one rank, buckets_at_one_rank gives
// the W > 1 machinery (gradients as views into buckets, readiness hooks, bucket all-reduces over the
// one rank) with the gradients of plain autograd, in both ways of running the buckets.
TEST(DataParallel, BucketsAtOneRankGiveTheGradientsOfPlainAutograd) {
  Communicator self(MPI_COMM_SELF);
  for (bool overlap : {true, false}) {
    SCOPED_TRACE(::testing::Message() << "overlap " << overlap);
    torch::manual_seed(3);
    TwoLayers net;
    DataParallel dp(self, *net, DataParallelOptions().bucket_bytes(100).overlap(overlap).buckets_at_one_rank(true));
    EXPECT_GT(dp.bucket_count(), 1);
    for (int step = 0; step < 2; ++step) {  // twice: the buckets are zeroed in place between steps
      dp.zero_grad();
      dp.begin(true);
      net->forward(rank_input(step), true).square().sum().backward();
      dp.finish();
    }
    torch::manual_seed(3);
    TwoLayers reference;
    reference->forward(rank_input(1), true).square().sum().backward();
    const auto got = net->parameters(), want = reference->parameters();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(close(got[i].grad(), want[i].grad(), 1e-12, 1e-15));
  }
}

TEST(DataParallel, UnusedParametersCountAsZerosWithoutDeadlock) {
  Communicator comm;
  torch::manual_seed(4);
  TwoLayers net;
  DataParallel dp(comm, *net, DataParallelOptions().bucket_bytes(8));
  // Only rank 0 uses the second layer.
  const bool use_second = comm.rank() == 0;
  dp.begin(true);
  const torch::Tensor out = net->forward(rank_input(comm.rank()), use_second);
  out.square().sum().backward();
  dp.finish();
  ASSERT_TRUE(net->second->weight.grad().defined());
  torch::manual_seed(4);
  TwoLayers reference;
  (reference->forward(rank_input(0), true).square().sum() / comm.world_size()).backward();
  EXPECT_TRUE(close(net->second->weight.grad(), reference->second->weight.grad(), 1e-12, 1e-15));
}

TEST(DataParallel, AccumulatedMicroBatchesSyncOnce) {
  Communicator comm;
  for (bool overlap : {true, false}) {
    torch::manual_seed(5);
    TwoLayers net;
    DataParallel dp(comm, *net, DataParallelOptions().overlap(overlap));
    const torch::Tensor x = rank_input(comm.rank());
    dp.begin(false);  // first micro-batch: local only
    net->forward(x.narrow(0, 0, 2), true).square().sum().backward();
    dp.finish();       // no-op
    dp.begin(true);
    net->forward(x.narrow(0, 2, 2), true).square().sum().backward();
    dp.finish();
    torch::manual_seed(5);
    TwoLayers reference;
    for (int q = 0; q < comm.world_size(); ++q)
      (reference->forward(rank_input(q), true).square().sum() / comm.world_size()).backward();
    EXPECT_TRUE(close(net->first->weight.grad(), reference->first->weight.grad(), 1e-12, 1e-15)) << overlap;
  }
}

// The gradients are views into the buckets: over three steps each .grad stays the same slice of
// its bucket (W > 1), finish() copies nothing in or out (no aten::copy_ or clone of its own: only
// the all-reduce's work), and zero_grad() zeroes them in place; at one rank there are no buckets
// and zero_grad() drops the gradients. The averages are checked by the tests above.
TEST(DataParallel, GradientsAreViewsIntoTheBuckets) {
  Communicator comm;
  for (bool overlap : {true, false}) {
    SCOPED_TRACE(overlap ? "overlap" : "after backward");
    torch::manual_seed(7);
    TwoLayers net;
    DataParallel dp(comm, *net, DataParallelOptions().overlap(overlap));
    std::vector<const void*> first_addresses;
    for (int step = 0; step < 3; ++step) {
      dp.zero_grad();
      for (const torch::Tensor& p : net->parameters()) {
        if (comm.world_size() == 1) {
          EXPECT_FALSE(p.grad().defined());
        } else {
          EXPECT_EQ(p.grad().abs().sum().item<double>(), 0.0);
        }
      }
      dp.begin(true);
      net->forward(rank_input(comm.rank()), true).square().sum().backward();
      const OpCounts finish = count_ops([&] { dp.finish(); });
      // (div_ by the rank count converts its scalar with a nested copy_: not a gradient copy.)
      EXPECT_EQ(finish.called.count("aten::copy_"), 0u);
      EXPECT_EQ(finish.called.count("aten::clone"), 0u);
      std::vector<const void*> addresses;
      for (const torch::Tensor& p : net->parameters()) addresses.push_back(p.grad().data_ptr());
      if (step == 0) first_addresses = addresses;
      if (comm.world_size() > 1) {
        EXPECT_EQ(addresses, first_addresses) << "step " << step;
      }
    }
    EXPECT_EQ(dp.bucket_count(), comm.world_size() == 1 ? 0 : 1);
  }
}

// A gradient replaced behind the buckets' back (a plain optimizer's zero_grad(set_to_none)) is
// caught in finish() instead of averaging stale bucket contents.
TEST(DataParallel, AReplacedGradientIsAnError) {
  Communicator comm;
  if (comm.world_size() == 1) GTEST_SKIP() << "no buckets at one rank";
  TwoLayers net;
  DataParallel dp(comm, *net, DataParallelOptions().overlap(false));
  dp.zero_grad();
  dp.begin(true);
  for (auto& p : net->parameters()) p.mutable_grad().reset();
  net->forward(rank_input(comm.rank()), true).square().sum().backward();
  EXPECT_THROW(dp.finish(), Error);
}

// SyncBatchNorm over W ranks of B rows equals BatchNorm over the W*B rows: output, gradients and
// running statistics, for 1-d and 2-d inputs.
TEST(SyncBatchNorm, EqualsBatchNormOnTheGlobalBatch) {
  Communicator comm;
  const int w = comm.world_size(), r = comm.rank();
  for (bool two_d : {false, true}) {
    SCOPED_TRACE(two_d ? "2-d" : "1-d");
    torch::manual_seed(6);
    const torch::Tensor global = two_d ? torch::randn({w * 3, 4, 5, 5}, torch::kDouble) * 3 + 1
                                       : torch::randn({w * 3, 4}, torch::kDouble) * 3 + 1;
    const torch::Tensor weights = torch::randn_like(global);
    SyncBatchNorm sync(4, comm);
    sync->to(torch::kDouble);
    torch::Tensor local = global.narrow(0, r * 3, 3).clone().requires_grad_(true);
    torch::Tensor y;
    for (int repeat = 0; repeat < 2; ++repeat) {  // running statistics move twice
      y = sync(local);
      (y * weights.narrow(0, r * 3, 3)).sum().backward();
    }
    torch::nn::AnyModule bn = two_d ? torch::nn::AnyModule(torch::nn::BatchNorm2d(4))
                                    : torch::nn::AnyModule(torch::nn::BatchNorm1d(4));
    bn.ptr()->to(torch::kDouble);
    torch::Tensor all = global.clone().requires_grad_(true);
    torch::Tensor expected;
    for (int repeat = 0; repeat < 2; ++repeat) {
      expected = bn.forward(all);
      (expected * weights).sum().backward();
    }
    EXPECT_TRUE(close(y.detach(), expected.detach().narrow(0, r * 3, 3), 1e-10, 1e-12));
    EXPECT_TRUE(close(local.grad(), all.grad().narrow(0, r * 3, 3), 1e-9, 1e-12));
    auto buffers = bn.ptr()->named_buffers();
    EXPECT_TRUE(close(sync->running_mean, buffers["running_mean"], 1e-12, 1e-14));
    EXPECT_TRUE(close(sync->running_var, buffers["running_var"], 1e-12, 1e-14));
    // Parameter gradients: each rank holds its share; their sum is BatchNorm's.
    torch::Tensor weight_grad = sync->weight.grad().clone();
    comm.all_reduce(weight_grad);
    EXPECT_TRUE(close(weight_grad, bn.ptr()->named_parameters()["weight"].grad(), 1e-9, 1e-12));
    sync->eval();
    bn.ptr()->eval();
    EXPECT_TRUE(close(sync(global).detach(), bn.forward(global).detach(), 1e-10, 1e-12));
  }
}

}  // namespace
}  // namespace hcl::dist
