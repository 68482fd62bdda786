// Checkpoint files (persist/checkpoint.h): a round trip restores the model, the optimizer state, the
// position and the configuration (JSON); a truncated file, a corrupt payload (CRC-32) and a file
// that is not a checkpoint are refused with errors that say which; a caller's check refuses a file
// before any tensor is copied; snapshots written in the background equal synchronous saves.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/check.h"
#include "tests/support/errors.h"
#include "tests/support/mpi_world.h"
#include "tests/support/tiny_net.h"
#include "persist/checkpoint.h"
#include "persist/checkpoint_writer.h"

namespace hcl::persist {
namespace {

namespace fs = std::filesystem;

using Net = test::TinyNet;

// A fresh folder per test, removed afterwards.
class CheckpointFile : public ::testing::Test {
 protected:
  void SetUp() override {
    HCL_ONLY_AT_RANKS(1);  // files of one process
    std::string pattern = (fs::temp_directory_path() / "hcl-checkpoint-test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // A net after two Adam steps (so the optimizer has state and BatchNorm running statistics moved).
  static void train_a_little(Net& net, torch::optim::Adam& adam) {
    torch::manual_seed(1);
    for (int i = 0; i < 2; ++i) {
      adam.zero_grad();
      net.forward(torch::randn({8, 4})).pow(2).mean().backward();
      adam.step();
    }
  }

  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  // A training configuration as the trainer writes it (persist/ does not read it).
  static nlohmann::json config() { return {{"arch", "small"}, {"seed", 7}, {"batch-size", 64}}; }

  // Writes a checkpoint of a trained net to `file`.
  void write(const std::string& file) {
    Net net;
    torch::optim::Adam adam(net.parameters(), torch::optim::AdamOptions(1e-2));
    train_a_little(net, adam);
    save_checkpoint(file, net, &adam, {3, 5, 42}, config());
  }

  static std::string bytes_of(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  static void overwrite(const std::string& file, const std::string& bytes) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  }

  std::string dir_;
};

TEST_F(CheckpointFile, RecordsTheGlobalBatch) {
  Net net;
  const std::string file = path("batch.pt");
  save_checkpoint(file, net, nullptr, {0, 2, 2}, config(), 96);
  EXPECT_EQ(read_checkpoint_header(file).global_batch, 96);
}

TEST_F(CheckpointFile, RoundTripRestoresModelOptimizerPositionAndConfig) {
  Net net;
  torch::optim::Adam adam(net.parameters(), torch::optim::AdamOptions(1e-2));
  train_a_little(net, adam);
  const std::string file = path("checkpoint.pt");
  save_checkpoint(file, net, &adam, {3, 5, 42}, config());
  EXPECT_TRUE(has_checkpoint_magic(file));
  EXPECT_FALSE(fs::exists(file + ".tmp"));

  Net restored;
  torch::optim::Adam restored_adam(restored.parameters(), torch::optim::AdamOptions(1e-2));
  const auto c = load_checkpoint(file, restored, &restored_adam);
  EXPECT_EQ(c.position.epoch, 3);
  EXPECT_EQ(c.position.step, 5);
  EXPECT_EQ(c.position.global_step, 42);
  EXPECT_EQ(c.config, config());
  EXPECT_EQ(read_checkpoint_header(file).config, config());
  EXPECT_EQ(c.global_batch, 0);  // not given: not recorded, read back as unknown (older checkpoints)
  const auto want = net.named_parameters(), have = restored.named_parameters();
  for (const auto& p : want) EXPECT_TRUE(torch::equal(p.value(), have[p.key()])) << p.key();
  const auto want_buffers = net.named_buffers(), have_buffers = restored.named_buffers();
  for (const auto& b : want_buffers) EXPECT_TRUE(torch::equal(b.value(), have_buffers[b.key()])) << b.key();

  // The optimizer state came back too: one more identical step keeps both nets equal.
  torch::manual_seed(9);
  const torch::Tensor x = torch::randn({8, 4});
  for (auto* pair : {&adam, &restored_adam}) pair->zero_grad();
  net.forward(x).pow(2).mean().backward();
  restored.forward(x).pow(2).mean().backward();
  adam.step();
  restored_adam.step();
  for (const auto& p : net.named_parameters()) EXPECT_TRUE(torch::equal(p.value(), have[p.key()])) << p.key();
}

TEST_F(CheckpointFile, TruncatedFileIsRefused) {
  const std::string file = path("checkpoint.pt");
  write(file);
  const std::string bytes = bytes_of(file);
  ASSERT_GT(bytes.size(), 100u);
  overwrite(file, bytes.substr(0, bytes.size() - 100));
  Net net;
  EXPECT_ERROR(load_checkpoint(file, net, nullptr),
               ": truncated (" + std::to_string(bytes.size() - 100 - 24) + " of ");
  overwrite(file, bytes.substr(0, 10));  // not even the header
  EXPECT_ERROR(read_checkpoint_header(file), "not an hcl checkpoint");
}

TEST_F(CheckpointFile, CorruptPayloadFailsTheChecksum) {
  const std::string file = path("checkpoint.pt");
  write(file);
  std::string bytes = bytes_of(file);
  bytes[bytes.size() / 2] ^= 0x5a;  // one byte of the archive, length unchanged
  overwrite(file, bytes);
  Net net;
  EXPECT_ERROR(load_checkpoint(file, net, nullptr), "corrupt (checksum mismatch)");
}

TEST_F(CheckpointFile, OtherFilesAndFilesTheCallerRefusesAreNotLoaded) {
  const std::string garbage = path("garbage.pt");
  overwrite(garbage, std::string(1000, 'x'));
  EXPECT_FALSE(has_checkpoint_magic(garbage));
  EXPECT_ERROR(read_checkpoint_header(garbage), "not an hcl checkpoint (bad magic)");
  EXPECT_ERROR(read_checkpoint_header(path("missing.pt")), "no such file");

  // The caller's check sees the header and refuses the file before any tensor is copied (train/'s
  // check_compatible: another architecture).
  const std::string file = path("checkpoint.pt");
  write(file);
  Net net;
  const torch::Tensor before = net.linear->weight.clone();
  nlohmann::json seen;
  EXPECT_ERROR(load_checkpoint(file, net, nullptr,
                               [&](const Checkpoint& c) {
                                 seen = c.config;
                                 throw Error("refused by the caller");
                               }),
               "refused by the caller");
  EXPECT_EQ(seen, config());
  EXPECT_TRUE(torch::equal(net.linear->weight, before));
}

// One more Adam step on fresh data: parameters, moments and step counts all change in place.
void step_once(Net& net, torch::optim::Optimizer& optimizer, int seed) {
  torch::manual_seed(seed);
  optimizer.zero_grad();
  net.forward(torch::randn({8, 4})).pow(2).mean().backward();
  optimizer.step();
}

TEST_F(CheckpointFile, BackgroundWriteOfASnapshotEqualsASynchronousSaveWhileTrainingGoesOn) {
  for (const bool sgd : {false, true}) {
    SCOPED_TRACE(sgd ? "sgd with momentum" : "adam");
    Net net;
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    if (sgd)
      optimizer = std::make_unique<torch::optim::SGD>(net.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    else
      optimizer = std::make_unique<torch::optim::Adam>(net.parameters(), torch::optim::AdamOptions(1e-2));
    for (int k = 0; k < 2; ++k) step_once(net, *optimizer, k);
    const std::string sync = path("sync.pt"), background = path("background.pt");
    save_checkpoint(sync, net, optimizer.get(), {1, 2, 3}, config());
    {
      CheckpointWriter writer;
      writer.start(background, snapshot_checkpoint(net, optimizer.get(), {1, 2, 3}, config()));
      for (int k = 2; k < 6; ++k) step_once(net, *optimizer, k);  // training goes on meanwhile
      const WriteOutcome outcome = writer.wait();
      EXPECT_TRUE(outcome.started);
      EXPECT_EQ(outcome.problem, "");
      EXPECT_EQ(outcome.path, background);
      EXPECT_FALSE(writer.wait().started);  // nothing in flight any more
    }
    EXPECT_FALSE(fs::exists(background + ".tmp"));
    EXPECT_EQ(bytes_of(background), bytes_of(sync));  // the snapshot's values, not the later ones

    // Loading it gives the values of the snapshot's time, which training has since left (the
    // weights; the linear bias before BatchNorm gets no gradient).
    Net restored;
    load_checkpoint(background, restored, nullptr);
    EXPECT_FALSE(torch::equal(restored.linear->weight, net.linear->weight));
    EXPECT_FALSE(torch::equal(restored.norm->weight, net.norm->weight));
  }
}

TEST_F(CheckpointFile, FailedBackgroundWriteNamesTheFileAndLeavesNoTemporaryFile) {
  Net net;
  // The .tmp on a full disk: created, then every write fails (ENOSPC).
  const std::string file = path("checkpoint.pt");
  fs::create_symlink("/dev/full", file + ".tmp");
  CheckpointWriter writer;
  bool reported = false;
  writer.start(file, snapshot_checkpoint(net, nullptr, {}, config()),
               [&](const WriteOutcome&) { reported = true; });
  const WriteOutcome outcome = writer.wait();
  EXPECT_EQ(outcome.problem, "checkpoint " + file + ".tmp: write failed: No space left on device");
  EXPECT_FALSE(reported);  // the report runs after a successful write only
  EXPECT_FALSE(fs::exists(fs::symlink_status(file + ".tmp")));
  EXPECT_FALSE(fs::exists(file));
  // A folder that does not exist: the .tmp cannot be created.
  const std::string missing = path("no/such/checkpoint.pt");
  writer.start(missing, snapshot_checkpoint(net, nullptr, {}, config()));
  EXPECT_EQ(writer.wait().problem, "checkpoint " + missing + ".tmp: cannot create: No such file or directory");
}

TEST_F(CheckpointFile, WriterJoinsAnUnfinishedWriteWhenDestroyed) {
  Net net;
  torch::optim::Adam adam(net.parameters(), torch::optim::AdamOptions(1e-2));
  train_a_little(net, adam);
  const std::string file = path("checkpoint.pt"), sync = path("sync.pt");
  save_checkpoint(sync, net, &adam, {0, 1, 1}, config());
  {
    CheckpointWriter writer;
    writer.start(file, snapshot_checkpoint(net, &adam, {0, 1, 1}, config()));
  }  // no wait(): the destructor joins
  EXPECT_EQ(bytes_of(file), bytes_of(sync));
}

}  // namespace
}  // namespace hcl::persist
