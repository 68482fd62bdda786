// hcl-eval: linear probe (and kNN vote) of a checkpoint written by hcl-train or a file written by
// hcl-export, or one of the two baselines a representation must beat: the probe on raw pixels, and
// the probe on an untrained encoder (random weights from --seed).
//   [mpirun -np W] hcl-eval --checkpoint runs/demo/checkpoint.pt [--protocol augmented] [--out result.json]
//   [mpirun -np W] hcl-eval --protocol pixels --dataset fashion-mnist --out pixels.json
//   [mpirun -np W] hcl-eval --random-encoder small --dataset fashion-mnist --seed 1 --out random.json
// Prints the result as one JSON object and writes it to --out. Exit codes: 0 done, 2 bad options or
// input files, 1 a failure during the run (a classifier whose loss diverged, a failed write).
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "core/atomic_file.h"
#include "core/check.h"
#include "core/device.h"
#include "core/enum_option.h"
#include "core/log.h"
#include "core/paths.h"
#include "core/run_guarded.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "dist/runtime.h"
#include "dist/version.h"
#include "eval/knn.h"
#include "eval/linear_eval.h"
#include "model/contrastive_model.h"
#include "train/trained_model.h"
#include "train/node_datasets.h"

namespace po = boost::program_options;

namespace {

// hcl-eval's options.
struct EvalArgs {
  std::string checkpoint, data_dir, out, random_encoder;
  std::optional<hcl::model::Arch> random_arch;  // --random-encoder, parsed by validate
  hcl::data::DatasetKind dataset = hcl::data::DatasetKind::FashionMnist;
  hcl::DeviceChoice device = hcl::DeviceChoice::Auto;
  hcl::eval::ProbeInput protocol = hcl::eval::ProbeInput::Features;
  int64_t epochs = 100, batch_size = 512, threads = 0, seed = 0, knn_k = 200, train_size = 0;
  double lr = 1e-3, weight_decay = 1e-6, crop_scale_min = 0.08, knn_temperature = 0.5;
  bool node_shared_data = true;
};

po::options_description describe(EvalArgs& a) {
  po::options_description desc("hcl-eval options");
  desc.add_options()("help,h", "print this help and exit")(
      "version", "print the versions of hcl, LibTorch, MPI and NCCL and exit")(
      "checkpoint", po::value(&a.checkpoint), "checkpoint of hcl-train or file of hcl-export (not with --protocol pixels)")(
      "random-encoder", po::value(&a.random_encoder),
      ("the baseline of an untrained encoder instead of --checkpoint: this architecture (" +
       hcl::choices_text<hcl::model::Arch>() + ") with random weights drawn from --seed, hcl-train's defaults "
       "for the dataset otherwise")
          .c_str())(
      "protocol", hcl::enum_option(&a.protocol, "protocol"),
      hcl::help_with_choices<hcl::eval::ProbeInput>("what the linear classifier reads").c_str())(
      "dataset", hcl::enum_option(&a.dataset, "dataset"),
      "dataset of --protocol pixels or --random-encoder (otherwise the one the run used)")(
      "data-dir", po::value(&a.data_dir), "dataset folder (default: the one the run used, or the dataset's own)")(
      "epochs", po::value(&a.epochs)->default_value(a.epochs), "epochs of the linear classifier")(
      "train-size", po::value(&a.train_size)->default_value(a.train_size),
      "train images the classifier and the kNN bank use: a fixed random subset (0: all; say so with the result)")(
      "batch-size", po::value(&a.batch_size)->default_value(a.batch_size), "batch size")(
      "lr", po::value(&a.lr)->default_value(a.lr, "0.001"), "Adam learning rate")(
      "weight-decay", po::value(&a.weight_decay)->default_value(a.weight_decay, "1e-06"), "Adam weight decay")(
      "crop-scale-min", po::value(&a.crop_scale_min)->default_value(a.crop_scale_min, "0.08"),
      "--protocol augmented: smallest random crop, as a fraction of the image")(
      "knn-k", po::value(&a.knn_k)->default_value(a.knn_k),
      "also the kNN weighted vote with this many neighbours (the papers' protocol: 200), the train images as memory "
      "bank and the whole test split scored (0: none; not with --protocol pixels)")(
      "knn-temperature", po::value(&a.knn_temperature)->default_value(a.knn_temperature, "0.5"),
      "temperature of the kNN weights exp(sim / t)")(
      "device", hcl::enum_option(&a.device, "device"), hcl::help_with_choices<hcl::DeviceChoice>("").c_str())(
      "threads", po::value(&a.threads)->default_value(a.threads), "CPU threads per rank (0: default)")(
      "node-shared-data", po::value(&a.node_shared_data)->default_value(true, "true")->implicit_value(true, "true"),
      "hold in-memory datasets once per node in shared memory, read by all its ranks (false: one copy per rank)")(
      "seed", po::value(&a.seed)->default_value(a.seed), "seed of the classifier and of its augmentation")(
      "out", po::value(&a.out), "result JSON file (default: linear_eval.json beside the checkpoint)");
  return desc;
}

void validate(EvalArgs& a) {
  using hcl::eval::ProbeInput;
  HCL_REQUIRE(a.epochs >= 1, "--epochs: must be >= 1, got ", a.epochs);
  HCL_REQUIRE(a.batch_size >= 1, "--batch-size: must be >= 1, got ", a.batch_size);
  HCL_REQUIRE(std::isfinite(a.lr) && a.lr > 0, "--lr: must be a finite number > 0, got ", a.lr);
  HCL_REQUIRE(std::isfinite(a.weight_decay) && a.weight_decay >= 0, "--weight-decay: must be a finite number >= 0, got ",
              a.weight_decay);
  HCL_REQUIRE(std::isfinite(a.crop_scale_min) && a.crop_scale_min > 0 && a.crop_scale_min <= 1,
              "--crop-scale-min: must be in (0, 1], got ", a.crop_scale_min);
  HCL_REQUIRE(a.knn_k >= 0, "--knn-k: must be >= 0, got ", a.knn_k);
  HCL_REQUIRE(a.train_size >= 0, "--train-size: must be >= 0, got ", a.train_size);
  HCL_REQUIRE(a.threads >= 0, "--threads: must be >= 0 (0: LibTorch's default), got ", a.threads);
  HCL_REQUIRE(std::isfinite(a.knn_temperature) && a.knn_temperature > 0, "--knn-temperature: must be a finite number > 0, got ",
              a.knn_temperature);
  hcl::require_usable_path("--checkpoint", a.checkpoint);  // all three are written into the result
  hcl::require_usable_path("--data-dir", a.data_dir);
  hcl::require_usable_path("--out", a.out);
  const bool pixels = a.protocol == ProbeInput::Pixels, random = !a.random_encoder.empty();
  if (pixels) a.knn_k = 0;  // no encoder: no features to vote with
  if (random) {
    a.random_arch = hcl::parse<hcl::model::Arch>("random-encoder", a.random_encoder);
    HCL_REQUIRE(a.checkpoint.empty(), "--random-encoder: not with --checkpoint (it is the untrained encoder's baseline)");
    HCL_REQUIRE(!pixels, "--random-encoder: not with --protocol pixels (which reads no encoder)");
  }
  HCL_REQUIRE(pixels || random || !a.checkpoint.empty(),
              "--checkpoint: required (only --protocol pixels and --random-encoder run without one)");
  HCL_REQUIRE(!a.checkpoint.empty() || !a.out.empty(), "--out: required without --checkpoint");
  if (a.checkpoint.empty()) return;
  HCL_REQUIRE(std::filesystem::is_regular_file(a.checkpoint), "--checkpoint: no such file '", a.checkpoint, "'");
  if (a.out.empty()) a.out = (std::filesystem::path(a.checkpoint).parent_path() / "linear_eval.json").string();
  std::error_code ec;
  HCL_REQUIRE(!std::filesystem::equivalent(a.out, a.checkpoint, ec), "--out: '", a.out,
              "' is the --checkpoint being evaluated; choose another file");
}

void validate_out_folder(const std::string& out) {
  HCL_REQUIRE(!std::filesystem::is_directory(out), "--out: '", out, "' is a folder; give the result's file name");
  const std::filesystem::path folder = std::filesystem::absolute(out).parent_path();
  HCL_REQUIRE(std::filesystem::is_directory(folder), "--out: folder '", folder.string(), "' does not exist");
  HCL_REQUIRE(::access(folder.c_str(), W_OK) == 0, "--out: folder '", folder.string(), "' is not writable");
}

// The probe's description as the name table gives it.
std::string protocol_note(hcl::eval::ProbeInput protocol) {
  for (const auto& entry : hcl::EnumNames<hcl::eval::ProbeInput>::table)
    if (entry.value == protocol) return entry.note;
  return "";
}

// What the evaluation reads: the trained model (none for pixels without a checkpoint), its
// configuration and the datasets.
struct EvalInputs {
  hcl::train::TrainConfig config;
  hcl::model::ContrastiveModel model{nullptr};
  hcl::data::Dataset train, test;
  torch::Device device = torch::kCPU;
};

// The model, its configuration and the device (the datasets come after: loading them is
// collective over the node). A random encoder is drawn from --seed on the CPU, so every rank holds
// the same weights.
void load_model(const EvalArgs& a, int local_rank, EvalInputs& in) {
  if (!a.checkpoint.empty()) {
    hcl::train::TrainedModel trained = hcl::train::load_trained_model(a.checkpoint);
    in.config = trained.config;
    in.model = trained.model;
  } else {
    in.config.dataset = a.dataset;
    in.config.data_dir = "";
  }
  if (a.random_arch) {
    in.config.arch = *a.random_arch;
    in.config.seed = a.seed;
    torch::manual_seed(static_cast<uint64_t>(a.seed));
    in.model = hcl::model::ContrastiveModel(in.config.model_options());
  }
  if (!a.data_dir.empty()) in.config.data_dir = a.data_dir;
  in.device = hcl::set_up_device(a.device, local_rank, a.threads);
}

// The train and evaluation splits in memory, loaded as hcl-train loads them (train/node_datasets.h),
// an image folder's centred crops decoded by its workers (only --train-size of the train split when
// set).
void load_datasets(const EvalArgs& a, const hcl::train::JobDatasets& splits, EvalInputs& in) {
  const hcl::train::TrainConfig& c = in.config;
  // Both loads are collective: they come before any decoding, which may fail on one rank only.
  const hcl::data::Dataset train = splits.load("train");
  const hcl::data::Dataset test = splits.load(hcl::data::dataset_info(c.dataset).eval_split);
  in.train = hcl::data::subset(train, a.train_size, a.seed, hcl::data::SubsetRole::Train);
  in.test = hcl::data::in_memory(test);
  hcl::data::check_splits(in.train, in.test, c.data_dir);
}

// The kNN weighted vote, the train images (all, or --train-size of them) as memory bank and the whole
// test split scored, as JSON (null when --knn-k is 0).
nlohmann::json knn_on_full_splits(const EvalArgs& a, EvalInputs& in, hcl::dist::Communicator& comm) {
  if (a.knn_k == 0) return nullptr;
  const auto [mean, stddev] = hcl::data::dataset_normalization(in.config.dataset, in.train.channels());
  const hcl::data::TwoViewAugmenter transform(
      hcl::data::AugmentOptions().output_size(in.train.height()).mean(mean).stddev(stddev), 0);
  const auto start = std::chrono::steady_clock::now();
  const hcl::eval::KnnResult r = hcl::eval::knn_evaluate(
      in.model, comm, transform, in.train, in.test,
      hcl::eval::KnnOptions().k(a.knn_k).temperature(a.knn_temperature), in.device);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  HCL_LOG(info) << "kNN-" << a.knn_k << " weighted vote: top-1 " << 100 * r.top1 << "% (bank " << r.bank << ", test "
                << r.test << ", " << seconds << " s)";
  return {{"protocol", "weighted vote of the k nearest train features (cosine, weights exp(sim / t)), whole test split"},
          {"k", a.knn_k}, {"temperature", a.knn_temperature}, {"top1", r.top1}, {"top5", r.top5},
          {"bank", r.bank}, {"test", r.test}, {"seconds", seconds}};
}

// The evaluation on every rank; errors become exit codes in run_guarded (core/run_guarded.h).
int evaluate(hcl::dist::MpiRuntime& mpi, int argc, char** argv) {
  const bool rank0 = mpi.rank() == 0;
  // Every rank runs hcl-eval (an MPMD launch with hcl-train ends here with exit 2, not a hang).
  hcl::dist::agree_on_program("hcl-eval");
  EvalArgs a;
  const po::options_description desc = describe(a);
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
    validate(a);
    validate_out_folder(a.out);
  });
  // --help on some ranks only (an MPMD launch): every rank ends with 0, the first that asked prints.
  if (const int asked = hcl::dist::lowest_rank_with(help); asked >= 0) {
    if (mpi.rank() == asked)
      std::cout << "usage: [mpirun -np W] hcl-eval --checkpoint FILE [options]\n"
                << "       [mpirun -np W] hcl-eval --protocol pixels --dataset NAME --out FILE [options]\n"
                << "       [mpirun -np W] hcl-eval --random-encoder ARCH --dataset NAME --out FILE [options]\n\n"
                << desc;
    return 0;
  }
  hcl::log::init({mpi.rank(), mpi.world_size(), hcl::log::Severity::info, ""});
  if (const std::string w = hcl::dist::singleton_warning(mpi.topology()); !w.empty()) HCL_LOG(warning) << w;
  // Loaded on every rank and agreed on before the first collective; then the datasets.
  EvalInputs in;
  hcl::dist::agree_on_start([&] { load_model(a, mpi.topology().local_rank, in); });
  const hcl::train::JobDatasets splits(in.config.dataset, in.config.data_dir,
                                       in.config.folder_options(mpi.topology().local_size), a.node_shared_data);
  hcl::dist::agree_on_start([&] { load_datasets(a, splits, in); });
  if (!in.model.is_empty()) in.model->to(in.device);
  const std::string what = !a.checkpoint.empty() ? a.checkpoint
                           : a.random_arch ? "an untrained encoder (seed " + std::to_string(a.seed) + ")"
                                           : std::string("raw pixels");
  HCL_LOG(info) << "linear evaluation (" << hcl::name_of(a.protocol) << ") of " << what << " ("
                << hcl::name_of(in.config.arch) << ", " << hcl::name_of(in.config.dataset) << ") on " << in.device;
  hcl::dist::Communicator comm;
  const auto r = hcl::eval::linear_evaluation(in.model, comm, in.train, in.test, in.config.dataset,
                                               hcl::eval::LinearEvalOptions()
                                                   .input(a.protocol)
                                                   .epochs(a.epochs)
                                                   .batch_size(a.batch_size)
                                                   .lr(a.lr)
                                                   .weight_decay(a.weight_decay)
                                                   .crop_scale_min(a.crop_scale_min)
                                                   .seed(a.seed),
                                               in.device);
  const bool pixels = a.protocol == hcl::eval::ProbeInput::Pixels;
  const nlohmann::json result = {{"checkpoint", a.checkpoint},
                                 {"random_encoder", a.random_arch.has_value()},
                                 {"dataset", hcl::name_of(in.config.dataset)},
                                 {"arch", pixels ? "pixels" : hcl::name_of(in.config.arch)},
                                 {"protocol", hcl::name_of(a.protocol)},
                                 {"protocol_note", protocol_note(a.protocol)},
                                 {"epochs", a.epochs},
                                 {"optimizer", "adam"},
                                 {"lr", a.lr},
                                 {"weight_decay", a.weight_decay},
                                 {"batch_size", a.batch_size},
                                 {"input_dim", r.input_dim},
                                 {"top1", r.top1},
                                 {"top5", r.top5},
                                 {"train_top1", r.train_top1},
                                 {"train_images", r.train_images},
                                 {"train_subset", a.train_size > 0 && r.train_images == a.train_size},
                                 {"test_images", r.test_images},
                                 {"knn", knn_on_full_splits(a, in, comm)}};
  if (rank0) {
    hcl::write_file_atomically(a.out, result.dump(2) + "\n", {"--out: "});
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
