// Tests of what dist::SyncBatchNorm costs: at one rank it is torch::nn::BatchNorm2d bit for bit and
// communicates nothing; at W ranks it makes exactly one collective per layer in forward (an
// all-gather) and one in backward (an all-reduce). Collectives are counted at the MPI level: this
// program defines MPI_Allgather, MPI_Allreduce, MPI_Reduce_scatter_block and MPI_Bcast, which count
// (while a test asks) and forward to the PMPI_ entry points, the MPI standard's profiling interface.
// The ATen ops of one layer's forward and backward are counted with a RecordFunction observer and
// printed (the figures quoted in the report).
#include <ATen/record_function.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <atomic>
#include <iostream>
#include <string>

#include "dist/sync_batchnorm.h"
#include "tests/support/mpi_world.h"

namespace {
std::atomic<bool> counting{false};
std::atomic<int> allgathers{0}, allreduces{0}, reduce_scatters{0}, broadcasts{0};
}  // namespace

extern "C" {
int MPI_Allgather(const void* sendbuf, int sendcount, MPI_Datatype sendtype, void* recvbuf, int recvcount,
                  MPI_Datatype recvtype, MPI_Comm comm) {
  if (counting) ++allgathers;
  return PMPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm);
}
int MPI_Allreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                  MPI_Comm comm) {
  if (counting) ++allreduces;
  return PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm);
}
int MPI_Reduce_scatter_block(const void* sendbuf, void* recvbuf, int recvcount, MPI_Datatype datatype,
                             MPI_Op op, MPI_Comm comm) {
  if (counting) ++reduce_scatters;
  return PMPI_Reduce_scatter_block(sendbuf, recvbuf, recvcount, datatype, op, comm);
}
int MPI_Bcast(void* buffer, int count, MPI_Datatype datatype, int root, MPI_Comm comm) {
  if (counting) ++broadcasts;
  return PMPI_Bcast(buffer, count, datatype, root, comm);
}
}

namespace hcl::dist {
namespace {

struct Collectives {
  int allgathers = 0, allreduces = 0, reduce_scatters = 0, broadcasts = 0;
  int total() const { return allgathers + allreduces + reduce_scatters + broadcasts; }
};

// The MPI collectives that `fn` makes on this rank.
Collectives count_collectives(const std::function<void()>& fn) {
  allgathers = allreduces = reduce_scatters = broadcasts = 0;
  counting = true;
  fn();
  counting = false;
  return {allgathers.load(), allreduces.load(), reduce_scatters.load(), broadcasts.load()};
}

std::atomic<int64_t> ops_called{0}, ops_all{0};
thread_local int op_depth = 0;

struct OpCount {
  int64_t called = 0;  // the calls made by the code under test (depth 0)
  int64_t all = 0;     // with the calls LibTorch makes inside those
};

// The autograd engine's own records (one around each backward node): not ops, and not a level.
bool is_engine(const at::RecordFunction& f) { return std::string(f.name()).rfind("autograd::", 0) == 0; }

// ATen ops made by `fn`, on any thread (backward may run on the autograd engine's threads).
OpCount count_aten_ops(const std::function<void()>& fn) {
  ops_called = ops_all = 0;
  op_depth = 0;
  const at::CallbackHandle handle = at::addGlobalCallback(
      at::RecordFunctionCallback(
          [](const at::RecordFunction& f) -> std::unique_ptr<at::ObserverContext> {
            if (is_engine(f)) return nullptr;
            ++ops_all;
            if (op_depth++ == 0) ++ops_called;
            return nullptr;
          },
          [](const at::RecordFunction& f, at::ObserverContext*) {
            if (!is_engine(f)) --op_depth;
          })
          .scopes({at::RecordScope::FUNCTION}));
  fn();
  at::removeCallback(handle);
  return {ops_called.load(), ops_all.load()};
}

// Two training steps of each layer on the same input (outputs and input gradients of the last),
// counting the SyncBatchNorm's collectives.
struct TwoSteps {
  torch::Tensor y_sync, y_bn, x_sync, x_bn;
  Collectives made;
};

TwoSteps two_training_steps(SyncBatchNorm& sync, torch::nn::BatchNorm2d& bn, const torch::Tensor& input,
                            const torch::Tensor& weights) {
  TwoSteps t;
  t.x_sync = input.clone().requires_grad_(true);
  t.x_bn = input.clone().requires_grad_(true);
  t.made = count_collectives([&] {
    for (int step = 0; step < 2; ++step) {
      t.y_sync = sync(t.x_sync);
      (t.y_sync * weights).sum().backward();
    }
  });
  for (int step = 0; step < 2; ++step) {
    t.y_bn = bn(t.x_bn);
    (t.y_bn * weights).sum().backward();
  }
  return t;
}

// At one rank (a communicator over MPI_COMM_SELF, whatever the world size): exactly BatchNorm2d, in
// training (output, input and parameter gradients, running statistics, num_batches_tracked, over
// two steps) and in evaluation, with no collective.
TEST(SyncBatchNorm, OneRankIsBatchNorm2dExactlyWithoutCollectives) {
  Communicator self(MPI_COMM_SELF);
  ASSERT_EQ(self.world_size(), 1);
  torch::manual_seed(11);
  const torch::Tensor input = torch::randn({6, 5, 7, 7}) * 2 + 0.5;
  const torch::Tensor weights = torch::randn_like(input);
  SyncBatchNorm sync(5, self);
  torch::nn::BatchNorm2d bn(5);
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor w = torch::rand({5}) + 0.5, b = torch::randn({5});
    sync->weight.copy_(w), sync->bias.copy_(b), bn->weight.copy_(w), bn->bias.copy_(b);
  }
  const TwoSteps t = two_training_steps(sync, bn, input, weights);
  EXPECT_EQ(t.made.total(), 0);
  const torch::Tensor &y_sync = t.y_sync, &y_bn = t.y_bn, &x_sync = t.x_sync, &x_bn = t.x_bn;
  sync->eval();
  bn->eval();
  torch::Tensor eval_sync;
  EXPECT_EQ(count_collectives([&] { eval_sync = sync(input); }).total(), 0);
  EXPECT_TRUE(torch::equal(eval_sync, bn(input)));
  EXPECT_TRUE(torch::equal(y_sync, y_bn));
  EXPECT_TRUE(torch::equal(x_sync.grad(), x_bn.grad()));
  EXPECT_TRUE(torch::equal(sync->weight.grad(), bn->weight.grad()));
  EXPECT_TRUE(torch::equal(sync->bias.grad(), bn->bias.grad()));
  EXPECT_TRUE(torch::equal(sync->running_mean, bn->running_mean));
  EXPECT_TRUE(torch::equal(sync->running_var, bn->running_var));
  EXPECT_EQ(sync->num_batches_tracked.item<int64_t>(), 2);
  EXPECT_TRUE(torch::equal(sync->num_batches_tracked, bn->num_batches_tracked));
}

// The test switch that lets one GPU run the code of many: synchronised at one rank, the layer takes
// the W > 1 path (one all-gather in forward, one all-reduce in backward; PyTorch's fused kernels on
// CUDA) and still equals BatchNorm2d: output, input and parameter gradients, running statistics.
void expect_synchronised_at_one_rank_is_batchnorm(const torch::Device& device, double rtol, double atol) {
  Communicator self(MPI_COMM_SELF);
  torch::manual_seed(12);
  const torch::Tensor input = (torch::randn({6, 5, 7, 7}) * 2 + 0.5).to(device);
  const torch::Tensor weights = torch::randn_like(input);
  SyncBatchNorm sync(5, self, 1e-5, 0.1, /*synchronise_at_one_rank=*/true);
  torch::nn::BatchNorm2d bn(5);
  sync->to(device);
  bn->to(device);
  const TwoSteps t = two_training_steps(sync, bn, input, weights);
  if (!device.is_cuda()) {  // CUDA's go through NCCL, which the MPI counters do not see
    EXPECT_EQ(t.made.allgathers, 2);
    EXPECT_EQ(t.made.allreduces, 2);
  }
  const auto near = [&](const torch::Tensor& a, const torch::Tensor& b) {
    return torch::allclose(a.cpu(), b.cpu(), rtol, atol);
  };
  EXPECT_TRUE(near(t.y_sync, t.y_bn));
  EXPECT_TRUE(near(t.x_sync.grad(), t.x_bn.grad()));
  EXPECT_TRUE(near(sync->weight.grad(), bn->weight.grad()));
  EXPECT_TRUE(near(sync->bias.grad(), bn->bias.grad()));
  EXPECT_TRUE(near(sync->running_mean, bn->running_mean));
  EXPECT_TRUE(near(sync->running_var, bn->running_var));
}

TEST(SyncBatchNorm, SynchronisedAtOneRankIsBatchNorm2d) {
  expect_synchronised_at_one_rank_is_batchnorm(torch::kCPU, 1e-5, 1e-6);
}

TEST(SyncBatchNorm, CudaSynchronisedAtOneRankIsBatchNorm2d) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (scripts/gpu_check runs this on a GPU)";
  if (::hcl::test::world_size() != 1) GTEST_SKIP() << "one rank per GPU";
  expect_synchronised_at_one_rank_is_batchnorm(torch::Device(torch::kCUDA, 0), 1e-4, 1e-5);
}

// Two layers at W ranks: forward makes one all-gather per layer, backward one all-reduce per layer,
// nothing else (the communicator's optional shape check, itself an all-reduce, is off here).
TEST(SyncBatchNorm, OneCollectivePerLayerInForwardAndInBackward) {
  CommunicatorOptions options;
  options.check_shapes = false;
  Communicator comm(MPI_COMM_WORLD, options);
  const int w = comm.world_size();
  torch::manual_seed(12 + comm.rank());
  SyncBatchNorm first(4, comm), second(4, comm);
  const torch::Tensor x = (torch::randn({3, 4, 6, 6}) * 3 + 1).requires_grad_(true);
  torch::Tensor loss;
  OpCount forward_ops, backward_ops;
  const Collectives forward = count_collectives(
      [&] { forward_ops = count_aten_ops([&] { loss = second(torch::relu(first(x))).square().sum(); }); });
  const Collectives backward = count_collectives([&] { backward_ops = count_aten_ops([&] { loss.backward(); }); });
  const int layers = w > 1 ? 2 : 0;
  EXPECT_EQ(forward.allgathers, layers);
  EXPECT_EQ(forward.total(), layers);
  EXPECT_EQ(backward.allreduces, layers);
  EXPECT_EQ(backward.total(), layers);
  // One layer's share: less the relu, square and sum around the two layers (and their backward).
  OpCount around_forward, around_backward;
  {
    const torch::Tensor h = torch::randn({3, 4, 6, 6}, torch::requires_grad());
    torch::Tensor l;
    around_forward = count_aten_ops([&] { l = torch::relu(h).square().sum(); });
    around_backward = count_aten_ops([&] { l.backward(); });
  }
  if (comm.rank() == 0)
    std::cout << "SyncBatchNorm at " << w << " rank(s), CPU, ATen ops per layer (called; with nested): forward "
              << (forward_ops.called - around_forward.called) / 2.0 << "; "
              << (forward_ops.all - around_forward.all) / 2.0 << ", backward "
              << (backward_ops.called - around_backward.called) / 2.0 << "; "
              << (backward_ops.all - around_backward.all) / 2.0 << "\n";
}

}  // namespace
}  // namespace hcl::dist
