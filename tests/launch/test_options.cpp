// hcl-train's configuration: the command line and config files through launch's
// parse_train_options (made-up argv), the command line winning over the file, errors that name the
// option, conflicts between options, the JSON form (every field round trip, names exactly as
// config.json and checkpoints have always held them, unknown keys rejected) and model_identity.
#include <gtest/gtest.h>

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/check.h"
#include "launch/options.h"

namespace hcl::launch {
namespace {

using train::TrainConfig;

ParsedOptions parse_args(std::vector<std::string> args, int world = 1) {
  args.insert(args.begin(), "hcl-train");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return parse_train_options(static_cast<int>(args.size()), argv.data(), world);
}

// The message of the hcl::Error that parsing `args` for `world` ranks throws ("" when it throws none).
std::string error_of(const std::vector<std::string>& args, int world = 1) {
  try {
    parse_args(args, world);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("hcl-test-options-" + std::to_string(::getpid()) + ".conf"))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void write(const std::string& text) { std::ofstream(path_) << text; }
  std::string path_;
};

TEST(Options, NoArgumentsGiveTheDefaults) {
  const ParsedOptions parsed = parse_args({});
  EXPECT_FALSE(parsed.help);
  TrainConfig expected;
  expected.global_batch = expected.batch_size;  // resolved for the job's one rank
  EXPECT_EQ(parsed.config.to_json(), expected.to_json());
}

// --global-batch states the objective's batch whatever the rank count; --batch-size (per rank)
// without it gives global = per rank x ranks. Both end up in the configuration (config.json).
TEST(Options, GlobalBatchIsSharedByTheRanks) {
  for (int world : {1, 2, 4, 8}) {
    const TrainConfig c = parse_args({"--global-batch", "256"}, world).config;
    EXPECT_EQ(c.global_batch, 256);
    EXPECT_EQ(c.batch_size, 256 / world);
    EXPECT_EQ(c.to_json().at("global-batch"), 256);
    const TrainConfig per_rank = parse_args({"--batch-size", "32"}, world).config;
    EXPECT_EQ(per_rank.batch_size, 32);
    EXPECT_EQ(per_rank.global_batch, 32 * world);
  }
  // Both given: they must agree (a config.json read back at its own rank count does).
  EXPECT_EQ(parse_args({"--global-batch", "128", "--batch-size", "32"}, 4).config.batch_size, 32);
  EXPECT_EQ(error_of({"--global-batch", "128", "--batch-size", "32"}, 2),
            "--batch-size: 32 per rank x 2 ranks is not --global-batch 128 (give one of the two)");
  EXPECT_EQ(error_of({"--global-batch", "256"}, 3),
            "--global-batch: 256 images cannot be shared by 3 ranks (each rank takes global-batch / ranks): use a "
            "multiple of 3");
  EXPECT_EQ(error_of({"--global-batch", "-4"}),
            "--global-batch: must be in [0, 1073741824] images (0: --batch-size per rank decides), got -4");
  // The per-rank share is checked as --batch-size is (at least 2 images per rank).
  EXPECT_EQ(error_of({"--global-batch", "4"}, 4), "--batch-size: must be in [2, 1073741824] images per rank, got 1");
}

// Paths as a shell would give them: '~' under $HOME in config files too (no folder named '~'), and
// --data-dir absolute, so config.json and checkpoints name the data from any working folder.
TEST_F(ConfigFile, PathsAreStoredAsAShellWouldGiveThem) {
  const char* home = std::getenv("HOME");
  const std::string saved = home ? home : "";
  ::setenv("HOME", "/home/researcher", 1);
  write("out = ~/runs/x\ndata-dir = data/fmnist\nresume = ~/runs/x/checkpoint.pt\n");
  const TrainConfig c = parse_args({"--config", path_}).config;
  EXPECT_EQ(c.out, "/home/researcher/runs/x");
  EXPECT_EQ(c.resume, "/home/researcher/runs/x/checkpoint.pt");
  EXPECT_EQ(c.data_dir, (std::filesystem::current_path() / "data/fmnist").string());
  EXPECT_EQ(parse_args({"--out", "~"}).config.out, "/home/researcher");
  EXPECT_EQ(parse_args({"--out", "a~/b", "--data-dir", "/abs/./d"}).config.out, "a~/b");
  EXPECT_EQ(parse_args({"--data-dir", "/abs/./d"}).config.data_dir, "/abs/d");
  EXPECT_EQ(parse_args({}).config.data_dir, "");  // the dataset's default folder
  ::unsetenv("HOME");
  EXPECT_EQ(error_of({"--out", "~/x"}), "'~/x': cannot expand '~' (HOME is not set); give the full path");
  if (home) ::setenv("HOME", saved.c_str(), 1);
}

// --workers 0: what Slurm gave the task, else this process's CPUs (its affinity) shared by the
// ranks of its node; never 0.
TEST(Options, DecodeWorkersFollowTheCpusThisTaskMayUse) {
  const char* saved = std::getenv("SLURM_CPUS_PER_TASK");
  const std::string kept = saved ? saved : "";
  ::unsetenv("SLURM_CPUS_PER_TASK");
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  const int cpus = CPU_COUNT(&allowed);
  EXPECT_EQ(train::default_decode_workers(1), cpus);
  EXPECT_EQ(train::default_decode_workers(2), std::max(1, cpus / 2));
  EXPECT_EQ(train::default_decode_workers(100000), 1);
  EXPECT_EQ(TrainConfig().folder_options(1).workers, cpus);
  ::setenv("SLURM_CPUS_PER_TASK", "3", 1);
  EXPECT_EQ(train::default_decode_workers(4), 3);
  EXPECT_EQ(TrainConfig().folder_options(4).workers, 3);
  ::setenv("SLURM_CPUS_PER_TASK", "junk", 1);
  EXPECT_EQ(train::default_decode_workers(1), cpus);
  TrainConfig given;
  given.workers = 5;
  EXPECT_EQ(given.folder_options(4).workers, 5);
  if (saved) ::setenv("SLURM_CPUS_PER_TASK", kept.c_str(), 1); else ::unsetenv("SLURM_CPUS_PER_TASK");
}

TEST_F(ConfigFile, GlobalBatchInAFileAndTheCommandLineWins) {
  write("global-batch = 512\n");
  EXPECT_EQ(parse_args({"--config", path_}, 4).config.batch_size, 128);
  EXPECT_EQ(parse_args({"--config", path_, "--global-batch", "64"}, 4).config.batch_size, 16);
}

TEST(Options, CommandLineSetsEnumsNumbersAndFlags) {
  const TrainConfig c =
      parse_args({"--arch",         "small",  "--dataset",       "cifar10",  "--optimizer", "lars",
                  "--lr-schedule",  "cosine", "--beta-schedule", "down",     "--estimator", "easy",
                  "--view-forward", "joint",  "--stem",          "imagenet", "--backend",   "mpi",
                  "--device",       "cpu",    "--log-level",     "warning",  "--lr",        "0.25",
                  "--batch-size",   "64",     "--sync-bn",       "false",    "--force"})
          .config;
  EXPECT_EQ(c.arch, model::Arch::Small);
  EXPECT_EQ(c.dataset, data::DatasetKind::Cifar10);
  EXPECT_EQ(c.optimizer, train::OptimizerKind::Lars);
  EXPECT_EQ(c.lr_schedule, train::LrSchedule::Cosine);
  EXPECT_EQ(c.beta_schedule, loss::BetaScheduleKind::Down);
  EXPECT_EQ(c.estimator, loss::Estimator::Easy);
  EXPECT_EQ(c.view_forward, train::ViewForward::Joint);
  EXPECT_EQ(c.stem, model::Stem::ImageNet);
  EXPECT_EQ(c.backend, dist::BackendChoice::Mpi);
  EXPECT_EQ(c.device, DeviceChoice::Cpu);
  EXPECT_EQ(c.log_level, log::Severity::warning);
  EXPECT_EQ(c.lr, 0.25);
  EXPECT_EQ(c.batch_size, 64);
  EXPECT_FALSE(c.sync_bn);
  EXPECT_TRUE(c.force);  // a flag without a value
}

TEST_F(ConfigFile, FileSetsOptionsAndTheCommandLineWins) {
  write("# a comment\narch = resnet50\nlr = 0.5\nprecision = fp32\nestimator = easy\n");
  const TrainConfig c = parse_args({"--config", path_, "--lr", "0.125", "--estimator", "hard"}).config;
  EXPECT_EQ(c.arch, model::Arch::ResNet50);  // from the file
  EXPECT_EQ(c.lr, 0.125);                    // the command line wins
  EXPECT_EQ(c.estimator, loss::Estimator::Hard);
  // The order on the command line does not matter.
  EXPECT_EQ(parse_args({"--lr", "0.125", "--config", path_}).config.lr, 0.125);
  EXPECT_EQ(parse_args({"--config", path_}).config.lr, 0.5);
}

TEST_F(ConfigFile, BadValuesAndUnknownOptionsInTheFileNameTheOption) {
  write("arch = vgg\n");
  EXPECT_EQ(error_of({"--config", path_}),
            "--arch: unknown value 'vgg' (expected one of resnet18, resnet34, resnet50 or small)");
  write("lr = 0.1\nfrobnicate = 3\n");
  EXPECT_NE(error_of({"--config", path_}).find("frobnicate"), std::string::npos);
  EXPECT_NE(error_of({"--config", path_ + ".missing"}).find("--config: cannot read"), std::string::npos);
}

TEST(Options, UnknownOptionsAndBadValuesNameTheOption) {
  EXPECT_NE(error_of({"--no-such-option", "1"}).find("no-such-option"), std::string::npos);
  EXPECT_EQ(error_of({"--estimator", "medium"}),
            "--estimator: unknown value 'medium' (expected one of hard or easy)");
  EXPECT_EQ(error_of({"--dataset", "imagenet"}),
            "--dataset: unknown value 'imagenet' (expected one of fashion-mnist, mnist, cifar10, cifar100, "
            "stl10, image-folder or synthetic)");
  EXPECT_NE(error_of({"--precision", "fp16"}).find("--precision: unknown value 'fp16'"), std::string::npos);
  EXPECT_NE(error_of({"--lr", "abc"}).find("--lr"), std::string::npos);
  EXPECT_NE(error_of({"--batch-size", "2.5"}).find("--batch-size"), std::string::npos);
  EXPECT_EQ(error_of({"--lr", "-1"}), "--lr: must be a finite number > 0, got -1");
  EXPECT_EQ(error_of({"--tau-plus", "1"}), "--tau-plus: must be in [0, 1), got 1");
}

TEST(Options, ConflictsBetweenOptions) {
  EXPECT_EQ(error_of({"--accumulate", "3"}), "--accumulate: 3 does not divide the batch size 256");
  EXPECT_EQ(error_of({"--batch-size", "8", "--accumulate", "8"}),
            "--accumulate: leaves fewer than 2 images per micro-batch");
  EXPECT_EQ(parse_args({"--batch-size", "8", "--accumulate", "4"}).config.accumulate, 4);
  EXPECT_NE(
      error_of({"--precision", "bf16", "--device", "cpu"}).find("--precision: bf16 needs a CUDA device"),
      std::string::npos);
  // With --device auto the machine decides: a CUDA device, or the CPU, where bf16 is refused.
  EXPECT_EQ(error_of({"--precision", "bf16", "--device", "auto"}).empty(), torch::cuda::is_available());
}

// What this machine cannot run is bad input too (exit 2 before anything is loaded or written).
TEST(Options, EnvironmentThatCannotRunTheConfiguration) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is here: nothing to refuse";
  EXPECT_EQ(error_of({"--device", "cuda"}), "--device: cuda, but no CUDA device is available to this rank");
  EXPECT_EQ(error_of({"--cuda-graph", "on"}),
            "--cuda-graph: on needs a CUDA device, but no CUDA device is available to this rank, so the device is "
            "the CPU; use auto or off");
  EXPECT_EQ(error_of({"--backend", "nccl", "--device", "cpu"}),
            "--backend: nccl needs a CUDA device, but the device is the CPU (--device cpu); use auto or mpi");
  EXPECT_EQ(error_of({"--precision", "bf16"}),
            "--precision: bf16 needs a CUDA device, but no CUDA device is available to this rank, so the device is "
            "the CPU; use fp32");
  EXPECT_EQ(error_of({"--cuda-graph", "auto", "--backend", "mpi"}), "");
}

TEST(Options, HelpListsEveryOptionWithItsChoicesAndDefault) {
  const ParsedOptions parsed = parse_args({"--help"});
  ASSERT_TRUE(parsed.help);
  // Boost wraps the descriptions: compare with every run of white space made one space.
  std::string text;
  for (const char ch : parsed.help_text)
    if (!std::isspace(static_cast<unsigned char>(ch)) || (!text.empty() && text.back() != ' '))
      text += std::isspace(static_cast<unsigned char>(ch)) ? ' ' : ch;
  TrainConfig::visit_fields(parsed.config, [&](const char* name, const auto&, const char*) {
    EXPECT_NE(text.find(std::string("--") + name), std::string::npos) << name;
  });
  EXPECT_NE(text.find("encoder: resnet18, resnet34, resnet50 or small"), std::string::npos);
  EXPECT_NE(text.find("cifar (3x3, no max-pool) or imagenet (7x7 stride 2, max-pool)"), std::string::npos);
  EXPECT_NE(text.find("--arch arg (=resnet18)"), std::string::npos);
  EXPECT_NE(text.find("--view-forward arg (=per-view)"), std::string::npos);
}

// Every field set to a value other than its default.
TrainConfig all_changed() {
  TrainConfig c;
  TrainConfig::visit_fields(c, [](const char*, auto& field, const char*) {
    using T = std::decay_t<decltype(field)>;
    if constexpr (is_named_enum_v<T>) {
      for (const auto& entry : EnumNames<T>::table)
        if (entry.value != field) {
          field = entry.value;
          break;
        }
    } else if constexpr (std::is_same_v<T, bool>) {
      field = !field;
    } else if constexpr (std::is_same_v<T, std::string>) {
      field += "/changed";
    } else {
      field = field + 3;
    }
  });
  return c;
}

TEST(ConfigJson, EveryFieldSurvivesTheRoundTrip) {
  const TrainConfig changed = all_changed();
  const nlohmann::json defaults = TrainConfig().to_json(), j = changed.to_json();
  for (const auto& item : defaults.items()) EXPECT_NE(item.value(), j.at(item.key())) << item.key();
  const TrainConfig back = TrainConfig::from_json(j);
  EXPECT_EQ(back.to_json(), j);
  EXPECT_EQ(back.arch, changed.arch);
  EXPECT_EQ(back.log_level, changed.log_level);
  EXPECT_EQ(back.lr, changed.lr);
  EXPECT_EQ(back.out, changed.out);
  // Keys left out keep their defaults.
  EXPECT_EQ(TrainConfig::from_json(nlohmann::json::object()).to_json(), defaults);
}

TEST(ConfigJson, NamesAreThoseOfExistingRunsAndCheckpoints) {
  const nlohmann::json j = TrainConfig().to_json();
  EXPECT_EQ(j.at("dataset"), "fashion-mnist");
  EXPECT_EQ(j.at("arch"), "resnet18");
  EXPECT_EQ(j.at("stem"), "cifar");
  EXPECT_EQ(j.at("view-forward"), "per-view");
  EXPECT_EQ(j.at("estimator"), "hard");
  EXPECT_EQ(j.at("beta-schedule"), "constant");
  EXPECT_EQ(j.at("optimizer"), "adam");
  EXPECT_EQ(j.at("lr-schedule"), "constant");
  EXPECT_EQ(j.at("precision"), "fp32");
  EXPECT_EQ(j.at("device"), "auto");
  EXPECT_EQ(j.at("backend"), "auto");
  EXPECT_EQ(j.at("log-level"), "info");
  // A configuration as an earlier hcl wrote it (the enum options as strings) loads.
  const TrainConfig c = TrainConfig::from_json(nlohmann::json::parse(R"({
      "dataset": "stl10", "arch": "resnet34", "stem": "imagenet", "view-forward": "joint",
      "estimator": "easy", "beta-schedule": "down", "optimizer": "sgd", "lr-schedule": "cosine",
      "precision": "bf16", "device": "cuda", "backend": "nccl", "log-level": "debug", "lr": 0.3})"));
  EXPECT_EQ(c.dataset, data::DatasetKind::Stl10);
  EXPECT_EQ(c.arch, model::Arch::ResNet34);
  EXPECT_EQ(c.stem, model::Stem::ImageNet);
  EXPECT_EQ(c.view_forward, train::ViewForward::Joint);
  EXPECT_EQ(c.estimator, loss::Estimator::Easy);
  EXPECT_EQ(c.beta_schedule, loss::BetaScheduleKind::Down);
  EXPECT_EQ(c.optimizer, train::OptimizerKind::Sgd);
  EXPECT_EQ(c.lr_schedule, train::LrSchedule::Cosine);
  EXPECT_EQ(c.precision, train::Precision::Bf16);
  EXPECT_EQ(c.device, DeviceChoice::Cuda);
  EXPECT_EQ(c.backend, dist::BackendChoice::Nccl);
  EXPECT_EQ(c.log_level, log::Severity::debug);
  EXPECT_EQ(c.lr, 0.3);
}

std::string from_json_error(const char* text) {
  try {
    TrainConfig::from_json(nlohmann::json::parse(text));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigJson, RejectsUnknownKeysBadNamesAndWrongTypes) {
  EXPECT_EQ(from_json_error(R"({"lr": 0.1, "frobnicate": 3})"),
            "unknown option 'frobnicate' in the configuration");
  EXPECT_EQ(from_json_error(R"({"arch": "vgg"})"),
            "--arch: unknown value 'vgg' (expected one of resnet18, resnet34, resnet50 or small)");
  EXPECT_EQ(from_json_error(R"({"arch": 18})"), "--arch: wrong type in JSON: 18");
  EXPECT_EQ(from_json_error(R"({"lr": "fast"})"), "--lr: wrong type in JSON: \"fast\"");
  EXPECT_EQ(from_json_error(R"({"lr": 0.1})"), "");
}

TEST(ConfigJson, ModelIdentityHoldsWhatACheckpointMustMatch) {
  TrainConfig c;
  EXPECT_EQ(c.model_identity(), nlohmann::json::parse(R"({"dataset": "fashion-mnist", "arch": "resnet18",
      "stem": "cifar", "projection-dim": 128, "head-hidden": 512, "optimizer": "adam"})"));
  TrainConfig other = c;
  other.lr = 0.5;
  other.epochs = 3;
  other.out = "elsewhere";
  EXPECT_EQ(other.model_identity(), c.model_identity());  // training options may change on resume
  other.arch = model::Arch::Small;
  EXPECT_NE(other.model_identity(), c.model_identity());
  other = c;
  other.projection_dim = 64;
  EXPECT_NE(other.model_identity(), c.model_identity());
}

}  // namespace
}  // namespace hcl::launch
