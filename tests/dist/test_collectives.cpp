// Multi-rank tests of dist::Communicator on the MPI backend: every collective with known values,
// several dtypes and shapes, and the clear errors for tensors that disagree across ranks.
#include <gtest/gtest.h>

#include "core/check.h"
#include "dist/communicator.h"
#include "tests/support/mpi_world.h"

namespace hcl::dist {
namespace {

using test::world_rank;
using test::world_size;

// Rank r's tensor: (r + 1) * (1 + arange), in `dtype` and `shape`.
torch::Tensor rank_tensor(int rank, torch::IntArrayRef shape, torch::ScalarType dtype) {
  const int64_t n = c10::multiply_integers(shape);
  return ((rank + 1) * (1 + torch::arange(n, torch::kDouble))).reshape(shape).to(dtype);
}

struct Case {
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
};

const std::vector<Case> kCases = {
    {torch::kFloat, {7}},        {torch::kDouble, {3, 5}},   {torch::kLong, {2, 3, 4}},
    {torch::kInt, {1}},          {torch::kBFloat16, {4, 2}}, {torch::kFloat, {0, 3}},
    {torch::kDouble, {1000, 17}},
};

TEST(Collectives, AllReduceSumAvgMaxMin) {
  Communicator comm;
  const int w = world_size(), r = world_rank();
  const double rank_sum = w * (w + 1) / 2.0;
  for (const auto& c : kCases) {
    SCOPED_TRACE(::testing::Message() << c.dtype << " " << torch::IntArrayRef(c.shape));
    const torch::Tensor base = rank_tensor(0, c.shape, torch::kDouble);  // 1 + arange
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
      if (op == ReduceOp::Avg && !torch::isFloatingType(c.dtype)) continue;
      torch::Tensor t = rank_tensor(r, c.shape, c.dtype);
      comm.all_reduce(t, op);
      const double factor = op == ReduceOp::Sum   ? rank_sum
                            : op == ReduceOp::Avg ? rank_sum / w
                            : op == ReduceOp::Max ? w
                                                  : 1.0;
      EXPECT_EQ(t.scalar_type(), c.dtype);
      EXPECT_TRUE(torch::allclose(t.to(torch::kDouble), (base * factor).to(c.dtype).to(torch::kDouble),
                                  c.dtype == torch::kBFloat16 ? 1e-2 : 1e-12))
          << to_string(op);
    }
  }
}

TEST(Collectives, AllReduceOfNonContiguousTensorIsInPlace) {
  Communicator comm;
  torch::Tensor storage = rank_tensor(world_rank(), {4, 6}, torch::kDouble);
  torch::Tensor view = storage.t();  // not contiguous
  comm.all_reduce(view, ReduceOp::Sum);
  const double rank_sum = world_size() * (world_size() + 1) / 2.0;
  EXPECT_TRUE(torch::allclose(storage, rank_tensor(0, {4, 6}, torch::kDouble) * rank_sum));
}

TEST(Collectives, AllGatherIsRankMajor) {
  Communicator comm;
  const int w = world_size();
  for (const auto& c : kCases) {
    if (c.shape.empty()) continue;
    SCOPED_TRACE(::testing::Message() << c.dtype << " " << torch::IntArrayRef(c.shape));
    const torch::Tensor gathered = comm.all_gather(rank_tensor(world_rank(), c.shape, c.dtype));
    ASSERT_EQ(gathered.size(0), c.shape[0] * w);
    for (int q = 0; q < w; ++q)
      EXPECT_TRUE(torch::equal(gathered.narrow(0, q * c.shape[0], c.shape[0]),
                               rank_tensor(q, c.shape, c.dtype)))
          << "block " << q;
  }
}

TEST(Collectives, ReduceScatterGivesEachRankItsReducedBlock) {
  Communicator comm;
  const int w = world_size(), r = world_rank();
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kLong, torch::kBFloat16}) {
    SCOPED_TRACE(::testing::Message() << dtype);
    const int64_t rows = 3;
    const torch::Tensor input = rank_tensor(r, {w * rows, 5}, dtype);
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max}) {
      const torch::Tensor out = comm.reduce_scatter(input, op);
      const torch::Tensor base = rank_tensor(0, {w * rows, 5}, torch::kDouble).narrow(0, r * rows, rows);
      const double factor = op == ReduceOp::Sum ? w * (w + 1) / 2.0 : w;
      EXPECT_TRUE(torch::allclose(out.to(torch::kDouble), (base * factor).to(dtype).to(torch::kDouble),
                                  dtype == torch::kBFloat16 ? 1e-2 : 1e-12));
    }
  }
}

TEST(Collectives, BroadcastCopiesTheRootsTensor) {
  Communicator comm;
  const int root = world_size() - 1;
  for (const auto& c : kCases) {
    torch::Tensor t = rank_tensor(world_rank(), c.shape, c.dtype);
    comm.broadcast(t, root);
    EXPECT_TRUE(torch::equal(t, rank_tensor(root, c.shape, c.dtype)));
  }
}

// Every shift of the ring: rank r receives rank (r - shift) mod W's tensor, every dtype as is.
TEST(Collectives, RingShiftReceivesFromTheRankBehind) {
  Communicator comm;
  const int w = world_size(), r = world_rank();
  for (const auto& c : kCases) {
    SCOPED_TRACE(::testing::Message() << c.dtype << " " << torch::IntArrayRef(c.shape));
    for (int shift : {1, -1, 2, w}) {
      const torch::Tensor got = comm.ring_shift(rank_tensor(r, c.shape, c.dtype), shift);
      const int from = ((r - shift) % w + w) % w;
      EXPECT_TRUE(torch::equal(got, rank_tensor(from, c.shape, c.dtype))) << "shift " << shift;
    }
  }
}

// sendrecv with explicit peers: the mirror exchange r <-> W-1-r, and a non-contiguous send.
TEST(Collectives, SendrecvExchangesWithTheGivenPeers) {
  Communicator comm;
  const int w = world_size(), r = world_rank();
  const int peer = w - 1 - r;
  const torch::Tensor send = rank_tensor(r, {3, 4}, torch::kDouble).t();  // not contiguous
  torch::Tensor recv = torch::empty({4, 3}, torch::kDouble);
  comm.sendrecv(send, peer, recv, peer);
  EXPECT_TRUE(torch::equal(recv, rank_tensor(peer, {3, 4}, torch::kDouble).t()));
}

TEST(Collectives, SendrecvRejectsBadPeersAndBuffers) {
  Communicator comm;
  const int w = world_size(), r = world_rank();
  const torch::Tensor send = torch::ones({2, 3});
  torch::Tensor recv = torch::empty({2, 3});
  EXPECT_THROW(comm.sendrecv(send, w, recv, r), Error);
  EXPECT_THROW(comm.sendrecv(send, r, recv, -1), Error);
  torch::Tensor wrong_shape = torch::empty({3, 2});
  try {
    comm.sendrecv(send, r, wrong_shape, r);
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sendrecv: output must be"), std::string::npos) << e.what();
  }
  torch::Tensor wrong_dtype = torch::empty({2, 3}, torch::kDouble);
  EXPECT_THROW(comm.sendrecv(send, r, wrong_dtype, r), Error);
}

TEST(Collectives, RingShiftOfUnevenShapesIsRejectedOnEveryRank) {
  if (world_size() == 1) GTEST_SKIP() << "needs two or more ranks";
  Communicator comm;
  try {
    comm.ring_shift(torch::ones({world_rank() + 1, 2}));
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sendrecv: ranks disagree"), std::string::npos) << e.what();
  }
}

TEST(Collectives, BarrierReturnsOnEveryRank) {
  Communicator comm;
  comm.barrier();
  SUCCEED();
}

TEST(Collectives, UnevenShapesAreRejectedOnEveryRank) {
  if (world_size() == 1) GTEST_SKIP() << "needs two or more ranks";
  Communicator comm;
  const int r = world_rank();
  const torch::Tensor uneven = torch::ones({r + 1, 3});
  try {
    comm.all_gather(uneven);
    FAIL() << "no exception";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("all_gather: ranks disagree"), std::string::npos) << what;
    EXPECT_NE(what.find("rank " + std::to_string(r) + " has Float [" + std::to_string(r + 1) + ", 3]"),
              std::string::npos)
        << what;
  }
  torch::Tensor wrong_dtype = r == 0 ? torch::ones({4}, torch::kDouble) : torch::ones({4});
  EXPECT_THROW(comm.all_reduce(wrong_dtype), Error);
  torch::Tensor wrong_length = torch::ones({2 + r});
  EXPECT_THROW(comm.all_reduce(wrong_length), Error);
  // The communicator stays usable after a rejected call.
  torch::Tensor ok = torch::ones({2});
  comm.all_reduce(ok);
  EXPECT_EQ(ok[0].item<float>(), static_cast<float>(world_size()));
}

TEST(Collectives, BadArgumentsGiveClearErrors) {
  Communicator comm;
  const int w = world_size();
  try {
    comm.reduce_scatter(torch::ones({w * 2 + 1, 2}));
    if (w > 1) FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must be divisible by the world size"), std::string::npos);
  }
  torch::Tensor ints = torch::ones({3}, torch::kLong);
  EXPECT_THROW(comm.all_reduce(ints, ReduceOp::Avg), Error);
  torch::Tensor t = torch::ones({3});
  EXPECT_THROW(comm.broadcast(t, w), Error);
  EXPECT_THROW(parse<BackendChoice>("backend", "gloo"), Error);
  EXPECT_EQ(parse<BackendChoice>("backend", "nccl"), BackendChoice::Nccl);
}

// The NCCL backend on CUDA tensors (GPU machines; NCCL cannot put two ranks on one GPU, so this
// runs where every rank has a GPU of its own).
TEST(Collectives, NcclOnCudaTensors) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (static_cast<int>(torch::cuda::device_count()) < world_size()) GTEST_SKIP() << "fewer GPUs than ranks";
  Communicator comm;
  const torch::Device gpu(torch::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank()));
  EXPECT_STREQ(comm.backend_name(gpu), "nccl");
  const int w = world_size(), r = world_rank();
  const double rank_sum = w * (w + 1) / 2.0;
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16, torch::kLong}) {
    SCOPED_TRACE(::testing::Message() << dtype);
    torch::Tensor t = rank_tensor(r, {3, 5}, dtype).to(gpu);
    comm.all_reduce(t, ReduceOp::Sum);
    EXPECT_TRUE(torch::allclose(t.cpu().to(torch::kDouble), rank_tensor(0, {3, 5}, torch::kDouble) * rank_sum, 1e-2));
    const torch::Tensor gathered = comm.all_gather(rank_tensor(r, {2, 3}, dtype).to(gpu)).cpu();
    for (int q = 0; q < w; ++q) EXPECT_TRUE(torch::equal(gathered.narrow(0, 2 * q, 2), rank_tensor(q, {2, 3}, dtype)));
    const torch::Tensor scattered = comm.reduce_scatter(rank_tensor(r, {2 * w, 4}, dtype).to(gpu)).cpu();
    EXPECT_TRUE(torch::allclose(scattered.to(torch::kDouble),
                                rank_tensor(0, {2 * w, 4}, torch::kDouble).narrow(0, 2 * r, 2) * rank_sum, 1e-2));
    torch::Tensor b = rank_tensor(r, {4}, dtype).to(gpu);
    comm.broadcast(b, 0);
    EXPECT_TRUE(torch::equal(b.cpu(), rank_tensor(0, {4}, dtype)));
    const torch::Tensor shifted = comm.ring_shift(rank_tensor(r, {3, 2}, dtype).to(gpu)).cpu();
    EXPECT_TRUE(torch::equal(shifted, rank_tensor((r + w - 1) % w, {3, 2}, dtype)));
  }
  torch::Tensor avg = torch::ones({8}, torch::TensorOptions().device(gpu));
  comm.all_reduce(avg, ReduceOp::Avg);
  EXPECT_TRUE(torch::allclose(avg.cpu(), torch::ones({8})));
  comm.barrier();
}

TEST(Collectives, MoveKeepsTheCommunicatorWorking) {
  Communicator first;
  Communicator second(std::move(first));
  Communicator third;
  third = std::move(second);
  torch::Tensor t = torch::ones({2});
  third.all_reduce(t);
  EXPECT_EQ(t[1].item<float>(), static_cast<float>(world_size()));
}

}  // namespace
}  // namespace hcl::dist
