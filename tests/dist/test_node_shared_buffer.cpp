// Tests of dist/node_shared_buffer.h at 1 to 4 ranks, for both kinds of memory (the leader's memfd,
// a named /dev/shm segment): every rank of a node reads what its leader wrote, a write by one rank
// is seen by the others (the same physical pages: the mapping's PSS is its size divided by the
// ranks), pretend nodes keep separate memory, the memfd has no name anywhere, and errors (sizes that
// differ, more than the memory, no room in /dev/shm) reach every rank as the same hcl::Error.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <type_traits>

#include "core/check.h"
#include "dist/node_shared_buffer.h"
#include "tests/support/mpi_world.h"
#include "tests/support/proc_maps.h"

namespace {

using hcl::dist::NodeComm;
using hcl::dist::NodeSharedBuffer;

static_assert(!std::is_copy_constructible_v<NodeSharedBuffer> && std::is_nothrow_move_constructible_v<NodeSharedBuffer>);
static_assert(!std::is_copy_constructible_v<NodeComm> && std::is_nothrow_move_constructible_v<NodeComm>);

uint8_t pattern(size_t i) { return static_cast<uint8_t>((i * 131 + 7) % 251); }

// allocate picks the memfd where the node's ranks share a PID namespace (always, here): each test
// below runs with either kind.
using Allocate = NodeSharedBuffer (*)(const NodeComm&, size_t);
class EachKind : public ::testing::TestWithParam<Allocate> {};
INSTANTIATE_TEST_SUITE_P(NodeSharedBuffer, EachKind,
                         ::testing::Values(&NodeSharedBuffer::allocate_anonymous, &NodeSharedBuffer::allocate_named),
                         [](const auto& info) { return info.index == 0 ? "Memfd" : "NamedSegment"; });

TEST_P(EachKind, EveryRankReadsWhatTheLeaderWrote) {
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  EXPECT_EQ(node.size(), hcl::test::world_size());  // the tests run on one host
  const size_t bytes = 3 * (1 << 20) + 12345;      // not a whole number of pages
  NodeSharedBuffer buffer = GetParam()(node, bytes);
  ASSERT_EQ(buffer.size(), bytes);
  auto* data = static_cast<uint8_t*>(buffer.data());
  if (node.is_leader())
    for (size_t i = 0; i < bytes; ++i) data[i] = pattern(i);
  node.barrier();
  size_t wrong = 0;
  for (size_t i = 0; i < bytes; ++i) wrong += data[i] != pattern(i);
  EXPECT_EQ(wrong, 0u);
}

TEST_P(EachKind, AWriteByOneRankIsSeenByTheOthers) {
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  NodeSharedBuffer buffer = GetParam()(node, 4096 * 4);
  auto* words = static_cast<int64_t*>(buffer.data());
  EXPECT_EQ(words[node.rank()], 0);  // zero-filled
  node.barrier();
  const int writer = node.size() - 1;  // the last rank, not the leader where there are two or more
  if (node.rank() == writer) words[100] = 4242 + writer;
  node.barrier();
  EXPECT_EQ(words[100], 4242 + writer);
}

TEST_P(EachKind, PagesAreSharedNotCopied) {
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  const size_t bytes = 32 << 20;
  NodeSharedBuffer buffer = GetParam()(node, bytes);
  auto* data = static_cast<volatile uint8_t*>(buffer.data());
  if (node.is_leader())
    for (size_t i = 0; i < bytes; i += 4096) data[i] = 1;
  node.barrier();
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes; i += 4096) sum += data[i];  // every rank touches every page
  EXPECT_EQ(sum, bytes / 4096);
  node.barrier();
  const double expected_kib = static_cast<double>(bytes) / 1024.0 / node.size();
  const auto pss = static_cast<double>(hcl::test::mapping_pss_kib(buffer.data()));
  EXPECT_NEAR(pss, expected_kib, expected_kib * 0.02) << node.size() << " ranks map " << bytes << " bytes";
  node.barrier();  // nobody unmaps before every rank has measured
}

TEST(NodeSharedBuffer, TheLeadersMemfdHasNoNameThatACrashCouldLeave) {
  // The kill -9 of a loading leader that left /dev/shm segments: a memfd is in no file system, and
  // every rank maps the leader's (its label names the leader's pid, as a segment's name did).
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  int64_t leader = getpid();
  node.broadcast(&leader, sizeof leader);
  NodeSharedBuffer buffer = NodeSharedBuffer::allocate(node, 1 << 20);
  const std::string file = hcl::test::mapping_file(buffer.data());
  EXPECT_EQ(file.rfind("/memfd:hcl-", 0), 0u) << file;
  EXPECT_NE(file.find("-" + std::to_string(leader) + "-"), std::string::npos) << file;
  EXPECT_NE(file.find("(deleted)"), std::string::npos) << file;
  if (std::filesystem::is_directory("/dev/shm")) {
    for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
      EXPECT_EQ(entry.path().filename().string().find("-" + std::to_string(leader) + "-"), std::string::npos)
          << entry.path();
    }
  }
  node.barrier();
}

TEST(NodeSharedBuffer, PretendNodesHaveTheirOwnMemory) {
  HCL_ONLY_AT_RANKS(2, 4);
  const int color = hcl::test::world_rank() % 2;
  const NodeComm node = NodeComm::by_color(MPI_COMM_WORLD, color);
  EXPECT_EQ(node.size(), hcl::test::world_size() / 2);
  NodeSharedBuffer buffer = NodeSharedBuffer::allocate(node, 64);
  auto* value = static_cast<int*>(buffer.data());
  if (node.is_leader()) *value = 10 + color;
  node.barrier();
  EXPECT_EQ(*value, 10 + color);
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(NodeSharedBuffer, MovingKeepsTheMappingAndEmptiesTheSource) {
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  NodeSharedBuffer a = NodeSharedBuffer::allocate(node, 100);
  void* const data = a.data();
  NodeSharedBuffer b = std::move(a);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(b.size(), 100u);
  static_cast<uint8_t*>(b.data())[99] = 7;  // still mapped
  EXPECT_EQ(NodeSharedBuffer::allocate(node, 0).data(), nullptr);
}

TEST(NodeSharedBuffer, DifferentSizesAreTheSameErrorOnEveryRank) {
  HCL_ONLY_AT_RANKS(2, 3, 4);
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  try {
    NodeSharedBuffer::allocate(node, node.is_leader() ? 100 : 200);
    ADD_FAILURE() << "no error";
  } catch (const hcl::Error& e) {
    EXPECT_STREQ(e.what(),
                 "node-shared memory: the ranks of a node asked for different sizes (from 100 to 200 bytes); "
                 "every rank must ask for the same");
  }
}

TEST(NodeSharedBuffer, MoreThanTheMemoryNamesTheSizeAndWhatIsAvailable) {
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  std::string message;
  try {
    NodeSharedBuffer::allocate(node, size_t{1} << 50);  // 1 PiB: refused before any page is touched
    ADD_FAILURE() << "no error";
  } catch (const hcl::Error& e) {
    message = e.what();
  }
  EXPECT_EQ(message.rfind("node-shared memory: cannot hold 1125899906842624 bytes (1073741824 MiB): only ", 0), 0u)
      << message;
  EXPECT_NE(message.find(" MiB of memory available on this node"), std::string::npos) << message;
  std::string leaders = message;
  node.broadcast(leaders);
  EXPECT_EQ(message, leaders);
}

TEST(NodeSharedBuffer, NoRoomInDevShmNamesTheSizeAndTheLimit) {
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  const size_t bytes = size_t{1} << 50;  // 1 PiB
  std::string message;
  try {
    NodeSharedBuffer::allocate_named(node, bytes);
    ADD_FAILURE() << "no error";
  } catch (const hcl::Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("cannot reserve 1125899906842624 bytes (1073741824 MiB) in /dev/shm"), std::string::npos)
      << message;
  EXPECT_NE(message.find("(/dev/shm: size "), std::string::npos) << message;
  // The same message on every rank: the leader's.
  std::string leaders = message;
  node.broadcast(leaders);
  EXPECT_EQ(message, leaders);
}

}  // namespace
