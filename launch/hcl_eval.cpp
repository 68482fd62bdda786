// hcl-eval: linear evaluation of a checkpoint written by hcl-train or a file written by hcl-export.
//   [mpirun -np W] hcl-eval --checkpoint runs/demo/checkpoint.pt [--epochs 100] [--out result.json]
// Prints the result as one JSON object and writes it to --out. Exit codes: 0 done, 2 bad options or
// input files, 1 a failure during the run (a classifier whose loss diverged, a failed write).
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "core/check.h"
#include "core/device.h"
#include "core/enum_option.h"
#include "core/log.h"
#include "core/paths.h"
#include "core/run_guarded.h"
#include "data/dataset.h"
#include "dist/runtime.h"
#include "dist/version.h"
#include "train/export.h"
#include "train/linear_eval.h"
#include "train/node_datasets.h"
#include "train/trainer.h"

namespace po = boost::program_options;

namespace {

// Writes `text` to `path` through a temporary file: a failed write is an error naming the file
// (exit 1), and leaves neither a partial file nor the temporary behind.
void write_checked(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::trunc);
    file << text;
    file.flush();
    if (!file) {
      const int error = errno;
      std::filesystem::remove(tmp);
      throw hcl::Error("--out: cannot write '" + path + "': " + std::strerror(error));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw hcl::Error("--out: cannot write '" + path + "': " + ec.message());
  }
}

// The evaluation on every rank; errors become exit codes in run_guarded (core/run_guarded.h).
int evaluate(hcl::dist::MpiRuntime& mpi, int argc, char** argv) {
  const bool rank0 = mpi.rank() == 0;
  std::string checkpoint, data_dir, out;
  hcl::DeviceChoice device_choice = hcl::DeviceChoice::Auto;
  int64_t epochs = 100, batch_size = 512, threads = 0, seed = 0;
  bool node_shared_data = true;
  double lr = 1e-3, weight_decay = 1e-6;
  po::options_description desc("hcl-eval options");
  desc.add_options()("help,h", "print this help and exit")(
      "version", "print the versions of hcl, LibTorch, MPI and NCCL and exit")("checkpoint", po::value(&checkpoint)->required(),
                                                           "checkpoint of hcl-train")(
      "data-dir", po::value(&data_dir), "dataset folder (default: the one the run used)")(
      "epochs", po::value(&epochs)->default_value(epochs), "epochs of the linear classifier")(
      "batch-size", po::value(&batch_size)->default_value(batch_size), "batch size")(
      "lr", po::value(&lr)->default_value(lr, "0.001"), "Adam learning rate")(
      "weight-decay", po::value(&weight_decay)->default_value(weight_decay, "1e-06"), "Adam weight decay")(
      "device", hcl::enum_option(&device_choice, "device"),
      hcl::help_with_choices<hcl::DeviceChoice>("").c_str())(
      "threads", po::value(&threads)->default_value(threads), "CPU threads per rank (0: default)")(
      "node-shared-data", po::value(&node_shared_data)->default_value(true, "true")->implicit_value(true, "true"),
      "hold the datasets once per node in shared memory, read by all its ranks (false: one copy per rank)")(
      "seed", po::value(&seed)->default_value(seed), "seed of the classifier")(
      "out", po::value(&out), "result JSON file (default: linear_eval.json beside the checkpoint)");
  // Parsed on every rank and agreed on before any collective (dist::agree_on_start): a problem on
  // some ranks only ends every rank with exit 2 and one message naming the rank.
  bool help = false;
  hcl::dist::agree_on_start([&] {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) {
      help = true;
      return;
    }
    po::notify(vm);
    HCL_REQUIRE(epochs >= 1, "--epochs: must be >= 1, got ", epochs);
    HCL_REQUIRE(batch_size >= 1, "--batch-size: must be >= 1, got ", batch_size);
    HCL_REQUIRE(std::isfinite(lr) && lr > 0, "--lr: must be a finite number > 0, got ", lr);
    HCL_REQUIRE(std::isfinite(weight_decay) && weight_decay >= 0, "--weight-decay: must be a finite number >= 0, got ", weight_decay);
    hcl::require_usable_path("--checkpoint", checkpoint);  // all three are written into the result
    hcl::require_usable_path("--data-dir", data_dir);
    hcl::require_usable_path("--out", out);
    HCL_REQUIRE(std::filesystem::is_regular_file(checkpoint), "--checkpoint: no such file '", checkpoint, "'");
    if (out.empty()) out = (std::filesystem::path(checkpoint).parent_path() / "linear_eval.json").string();
    std::error_code ec;
    HCL_REQUIRE(!std::filesystem::equivalent(out, checkpoint, ec), "--out: '", out,
                "' is the --checkpoint being evaluated; choose another file");
    const std::filesystem::path folder = std::filesystem::absolute(out).parent_path();
    HCL_REQUIRE(std::filesystem::is_directory(folder), "--out: folder '", folder.string(), "' does not exist");
    HCL_REQUIRE(::access(folder.c_str(), W_OK) == 0, "--out: folder '", folder.string(), "' is not writable");
  });
  if (help) {
    if (rank0) std::cout << "usage: [mpirun -np W] hcl-eval --checkpoint FILE [options]\n\n" << desc;
    return 0;
  }
  hcl::log::init({mpi.rank(), mpi.world_size(), hcl::log::Severity::info, ""});
  if (const std::string w = hcl::dist::singleton_warning(mpi.topology()); !w.empty()) HCL_LOG(warning) << w;
  if (threads > 0) torch::set_num_threads(static_cast<int>(threads));
  // A checkpoint of hcl-train or a file of hcl-export (with its JSON beside it) and the device:
  // loaded on every rank and agreed on before the first collective. Then the datasets it names,
  // once per node in shared memory (collective over the node, so after that agreement).
  std::optional<hcl::train::TrainedModel> trained;
  torch::Device device = torch::kCPU;
  hcl::data::Dataset train, test;
  hcl::dist::agree_on_start([&] {
    trained.emplace(hcl::train::load_trained_model(checkpoint));
    if (!data_dir.empty()) trained->config.data_dir = data_dir;
    device = hcl::resolve_device(device_choice, mpi.topology().local_rank);
  });
  const hcl::dist::NodeComm node = hcl::dist::NodeComm::of_this_node(MPI_COMM_WORLD);
  hcl::dist::agree_on_start([&] {
    const hcl::train::TrainConfig& c = trained->config;
    // In-memory formats once per node; image folders: every image's centred crop decoded into
    // memory by the workers.
    const hcl::data::FolderLoadOptions folder = c.folder_options(mpi.topology().local_size);
    const bool shared = node_shared_data && c.dataset != hcl::data::DatasetKind::ImageFolder;
    const auto load = [&](const std::string& split) {
      return shared ? hcl::train::load_dataset_once_per_node(node, c.dataset, c.data_dir, split)
                    : hcl::data::in_memory(hcl::data::load_dataset(c.dataset, c.data_dir, split, folder));
    };
    train = load("train");
    test = load(hcl::data::dataset_info(c.dataset).eval_split);
    hcl::data::check_splits(train, test, c.data_dir);
  });
  hcl::train::TrainConfig& config = trained->config;
  hcl::model::ContrastiveModel& net = trained->model;
  net->to(device);
  HCL_LOG(info) << "linear evaluation of " << checkpoint << " (" << hcl::name_of(config.arch) << ", "
                << hcl::name_of(config.dataset) << ") on " << device;
  hcl::dist::Communicator comm;
  const auto r = hcl::train::linear_evaluation(
      net, comm, train, test, config.dataset,
      hcl::train::LinearEvalOptions().epochs(epochs).batch_size(batch_size).lr(lr).weight_decay(weight_decay).seed(seed),
      device);
  const nlohmann::json result = {{"checkpoint", checkpoint},
                                 {"dataset", hcl::name_of(config.dataset)},
                                 {"arch", hcl::name_of(config.arch)},
                                 {"epochs", epochs},
                                 {"top1", r.top1},
                                 {"top5", r.top5},
                                 {"train_top1", r.train_top1},
                                 {"train_images", r.train_images},
                                 {"test_images", r.test_images}};
  if (rank0) {
    write_checked(out, result.dump(2) + "\n");
    std::cout << result.dump() << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-eval")) return 0;  // no MPI, no data
  hcl::dist::MpiRuntime mpi(&argc, &argv);
  return hcl::run_guarded("hcl-eval", [&] { return evaluate(mpi, argc, argv); });
}
