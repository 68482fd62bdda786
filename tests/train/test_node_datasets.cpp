// Tests of train/node_datasets.h at 1 to 4 ranks: a dataset loaded once per node has the same
// bytes as one loaded by each rank, lives in memory that the ranks share (a write is seen by all;
// unmapped when the last tensor goes), is loaded by one rank per (pretend) node, and a load error
// on the leader reaches every rank as the same error, without a hang. An image folder's index is
// made on rank 0 alone and reaches every rank whole, with rank 0's errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/check.h"
#include "train/node_datasets.h"
#include "tests/support/mpi_world.h"
#include "tests/support/proc_maps.h"

namespace {

using hcl::dist::NodeComm;
using hcl::train::load_dataset_once_per_node;
using hcl::train::index_once_per_job;
using hcl::train::load_once_per_node;

// The same 64-bit value on every rank of MPI_COMM_WORLD.
bool same_everywhere(uint64_t value) {
  uint64_t low = value, high = value;
  MPI_Allreduce(MPI_IN_PLACE, &low, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &high, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
  return low == high;
}

void expect_same(const hcl::data::Dataset& a, const hcl::data::Dataset& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.num_classes, b.num_classes);
  EXPECT_EQ(a.images.sizes(), b.images.sizes());
  EXPECT_EQ(a.images.scalar_type(), b.images.scalar_type());
  EXPECT_EQ(a.labels.scalar_type(), b.labels.scalar_type());
  EXPECT_TRUE(a.images.equal(b.images));
  EXPECT_TRUE(a.labels.equal(b.labels));
}

TEST(NodeDatasets, SameBytesAsLoadingOnEveryRank) {
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  const auto kind = hcl::data::DatasetKind::Synthetic;
  expect_same(load_dataset_once_per_node(node, kind, "", "train"), hcl::data::load_dataset(kind, "", "train"));
}

TEST(NodeDatasets, SameBytesOfFashionMnistWithUnlabeledImages) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << dir << " is not installed";
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  const auto load = [&] {
    hcl::data::Dataset d = hcl::data::load_dataset(hcl::data::DatasetKind::FashionMnist, dir, "test");
    d.labels.narrow(0, 0, 10).fill_(-1);  // labels -1 (unlabeled) survive too
    return d;
  };
  expect_same(load_once_per_node(node, load), load());
}

TEST(NodeDatasets, RanksOfANodeShareOneCopy) {
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  hcl::data::Dataset d = load_dataset_once_per_node(node, hcl::data::DatasetKind::Synthetic, "", "test");
  node.barrier();
  if (node.rank() == node.size() - 1) d.images[5][0][1][2] = 77;
  node.barrier();
  EXPECT_EQ(d.images[5][0][1][2].item<int>(), 77);
  if (node.size() == 1) return;  // a node of one rank keeps its own tensors
  // The mapping (labels first, at its start) is unmapped when the last tensor over it goes.
  const void* start = d.labels.data_ptr();
  EXPECT_GT(hcl::test::mapping_pss_kib(start), 0);
  d.images = torch::Tensor();
  EXPECT_GT(hcl::test::mapping_pss_kib(start), 0);
  d.labels = torch::Tensor();
  EXPECT_EQ(hcl::test::mapping_pss_kib(start), -1);
}

TEST(NodeDatasets, OneLoadPerNode) {
  HCL_ONLY_AT_RANKS(2, 4);
  const NodeComm node = NodeComm::by_color(MPI_COMM_WORLD, hcl::test::world_rank() % 2);  // two pretend nodes
  int loads = 0;
  const hcl::data::Dataset d = load_once_per_node(node, [&] {
    ++loads;
    return hcl::data::make_synthetic(40, 3, 8, 4, 9);
  });
  MPI_Allreduce(MPI_IN_PLACE, &loads, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(loads, 2);
  expect_same(d, hcl::data::make_synthetic(40, 3, 8, 4, 9));
}

TEST(NodeDatasets, LeadersErrorIsEveryRanksError) {
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  const std::string dir = "/nonexistent/fashion";
  std::string expected;
  try {
    hcl::data::load_dataset(hcl::data::DatasetKind::FashionMnist, dir, "train");
  } catch (const hcl::Error& e) {
    expected = e.what();
  }
  ASSERT_NE(expected, "");
  EXPECT_NE(expected.find(dir), std::string::npos) << expected;
  try {
    load_dataset_once_per_node(node, hcl::data::DatasetKind::FashionMnist, dir, "train");
    ADD_FAILURE() << "no error";
  } catch (const hcl::Error& e) {
    EXPECT_EQ(e.what(), expected);
  }
}

TEST(NodeDatasets, LeaderKeepsItsErrorsTypeOthersGetItsMessage) {
  const NodeComm node = NodeComm::of_this_node(MPI_COMM_WORLD);
  const auto load = []() -> hcl::data::Dataset { throw hcl::InputError("dataset x: bad header in y"); };
  try {
    load_once_per_node(node, load);
    ADD_FAILURE() << "no error";
  } catch (const hcl::InputError& e) {
    EXPECT_TRUE(node.is_leader());
    EXPECT_STREQ(e.what(), "dataset x: bad header in y");
  } catch (const hcl::Error& e) {
    EXPECT_FALSE(node.is_leader());
    EXPECT_STREQ(e.what(), "dataset x: bad header in y");
  }
}

// The other ranks are given a root that does not exist and no cache: had they scanned the folder
// or read the cache themselves, they would have failed or seen no cache.
TEST(NodeDatasets, ImageIndexIsMadeOnRankZeroForTheJob) {
  const NodeComm job = NodeComm::by_color(MPI_COMM_WORLD, 0);
  const std::filesystem::path mine = std::filesystem::temp_directory_path() / ("hcl_job_index_" + std::to_string(::getpid()));
  std::string root = "/nonexistent/hcl-images", cache;
  if (job.is_leader()) {
    for (const char* name : {"train/b/1.png", "train/b/0.JPEG", "train/a/2.jpg", "train/a/notes.txt"}) {
      std::filesystem::create_directories((mine / name).parent_path());
      std::ofstream(mine / name) << "not decoded here";
    }
    root = mine.string();
    cache = (mine / "cache").string();
  }
  const hcl::data::ImageIndex index = index_once_per_job(job, root, "train", cache);
  EXPECT_EQ(index.classes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(index.files, (std::vector<std::string>{"train/a/2.jpg", "train/b/0.JPEG", "train/b/1.png"}));
  EXPECT_EQ(index.labels, (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(index.other_files, 1);
  EXPECT_FALSE(index.from_cache);
  EXPECT_TRUE(same_everywhere(index.fingerprint()));
  EXPECT_TRUE(same_everywhere(std::hash<std::string>{}(index.root)));
  // Rank 0's cache, read by rank 0 only: every rank learns the index came from it.
  if (job.is_leader()) hcl::data::write_index_cache(index, cache);
  const hcl::data::ImageIndex cached = index_once_per_job(job, root, "train", cache);
  EXPECT_TRUE(cached.from_cache);
  EXPECT_EQ(cached.files, index.files);
  if (job.is_leader()) std::filesystem::remove_all(mine);
}

TEST(NodeDatasets, ImageIndexErrorOfRankZeroIsEveryRanksError) {
  const NodeComm job = NodeComm::by_color(MPI_COMM_WORLD, 0);
  const std::string root = "/nonexistent/hcl-images";
  std::string expected;
  try {
    hcl::data::index_image_folder(root, "train", "");
  } catch (const hcl::Error& e) {
    expected = e.what();
  }
  ASSERT_NE(expected.find(root), std::string::npos) << expected;
  try {
    index_once_per_job(job, root, "train", "");
    ADD_FAILURE() << "no error";
  } catch (const hcl::Error& e) {
    EXPECT_EQ(e.what(), expected);
  }
}

}  // namespace
