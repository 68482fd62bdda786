// hcl-train's set-up (train/setup.h).
#include "train/setup.h"

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/device.h"
#include "core/log.h"
#include "data/image_folder.h"
#include "data/sampler.h"
#include "core/fault_injection.h"
#include "train/node_datasets.h"
#include "train/resume.h"
#include "train/trained_model.h"

namespace hcl::train {
namespace {

// Every rank must run the same configuration and LibTorch: one hash per option (and one of the
// LibTorch version) compared across ranks before any work, naming what differs.
void check_same_config(dist::Communicator& comm, const TrainConfig& config) {
  std::vector<std::string> names;
  std::vector<int64_t> hashes;
  auto add = [&](const std::string& name, const std::string& value) {
    names.push_back(name);
    hashes.push_back(static_cast<int64_t>(std::hash<std::string>{}(value) >> 1));
  };
  const nlohmann::json j = config.to_json();
  for (const auto& item : j.items()) add("--" + item.key(), item.value().dump());
  add("LibTorch version", TORCH_VERSION);
  const torch::Tensor differs = comm.differs_across_ranks(torch::tensor(hashes, torch::kLong));
  std::string list;
  for (size_t i = 0; i < names.size(); ++i)
    if (differs[static_cast<int64_t>(i)].item<bool>()) list += (list.empty() ? "" : ", ") + names[i];
  if (!list.empty())
    throw InputError("ranks were started with different settings: " + list + " (here LibTorch " +
                     TORCH_VERSION + "; check the command line, config files and installation of every rank)");
}

// Same dataset on every rank (size and content fingerprint).
void check_same_dataset(dist::Communicator& comm, const data::Dataset& d) {
  const int64_t sum = d.folder ? static_cast<int64_t>(d.folder->index().fingerprint())
                               : d.images.flatten().narrow(0, 0, std::min<int64_t>(d.images.numel(), 1 << 20))
                                     .to(torch::kLong).sum().item<int64_t>();
  if (comm.differs_across_ranks(torch::tensor({d.size(), sum}, torch::kLong)).any().item<bool>())
    throw InputError(detail::concat("ranks loaded different datasets (", d.name, ": ", d.size(),
                                    " images here); every rank must read the same files"));
}

std::string count_of(int n, const std::string& what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); }

// The start-up line's account of --objective-comm at W ranks.
std::string how_views_meet(ObjectiveComm form, int world) {
  if (form == ObjectiveComm::AllGather) return "all-gather (--objective-comm allgather)";
  const std::string blocks = count_of(world - 1, "block shift");
  return form == ObjectiveComm::Ring
             ? "ring (--objective-comm ring: " + blocks + " each way, memory independent of the ranks)"
             : "ring (--objective-comm ring-keep: " + blocks + " forward, " + count_of(world - 1, "gradient shift") +
                   " backward, the blocks kept: memory grows with the ranks)";
}

}  // namespace

// This rank's device, with the thread count and fast math set.
torch::Device prepare_device(const TrainConfig& config, const dist::Topology& topology) {
  // (What this machine cannot run was refused with the options: TrainConfig::check_environment.)
  return set_up_device(config.device, topology.local_rank, config.threads);
}

// The step's communicator over every rank of the job, once every rank is known to run the same
// configuration. Collective.
dist::Communicator open_communicator(const TrainConfig& config, const torch::Device& device) {
  dist::CommunicatorOptions options;
  options.backend = config.backend;
  options.timeout = std::chrono::seconds(config.collective_timeout);
  dist::Communicator comm(options);
  check_same_config(comm, config);
  comm.log_startup(device);
  HCL_LOG(info) << "configuration: " << config.to_json().dump();
  return comm;
}

// The datasets, with every input that bad options can break (HCL_FAULT, the batch size, the resume
// checkpoint) checked on every rank; a problem anywhere throws InputError on every rank alike.
// Nothing has been written yet (an image folder's cached index is only read). Collective.
Datasets load_datasets(dist::Communicator& comm, const TrainConfig& config, int local_ranks) {
  Datasets d;
  const int world = comm.world_size();
  const int64_t global_batch = config.batch_size * world;
  const char* eval_split = data::dataset_info(config.dataset).eval_split;
  // In-memory formats: one copy per node in shared memory, read by all its ranks. An image folder
  // holds only its index in memory, made on rank 0 and sent to the others. The loads are
  // collective, so they come first, all of them (nothing before them may throw on one rank only).
  const JobDatasets splits(config.dataset, config.data_dir, config.folder_options(local_ranks), config.node_shared_data);
  const auto load = [&](const std::string& split) { return splits.load(split); };
  // A problem anywhere: every rank throws InputError with the lowest failing rank's message.
  dist::agree_on_start([&] {
    d.train = load(config.train_split);
    const data::Dataset eval = load(eval_split);
    const data::Dataset labeled = config.train_split == "train" ? d.train : load("train");
    // kNN reads labeled images in memory (an image folder's: the centred crops, decoded now).
    d.test = data::subset(eval, config.knn_test_size, config.seed, data::SubsetRole::Test);
    d.knn_bank = data::subset(labeled, config.knn_bank_size, config.seed, data::SubsetRole::Train);
    fault_plan();  // a malformed HCL_FAULT is bad input too
    data::check_splits(d.knn_bank, d.test, config.data_dir);
    HCL_REQUIRE(world <= d.train.size(), "the job has ", world, " ranks but the dataset has only ",
                d.train.size(), " images (every rank needs at least ", config.batch_size, ")");
    HCL_REQUIRE(global_batch <= d.train.size(), "--batch-size: the global batch (", config.batch_size,
                " per rank x ", world, " ranks = ", global_batch, ") exceeds the dataset (",
                d.train.size(), " images)");
    // An interval shorter than one step would silently mean "never" (intervals count whole steps).
    const int64_t steps_per_epoch = data::DistributedSampler(d.train.size(), config.batch_size, 0, world, 0).steps_per_epoch();
    for (const auto& [name, epochs] : {std::pair{"eval-interval", config.eval_interval},
                                       std::pair{"checkpoint-interval", config.checkpoint_interval}})
      HCL_REQUIRE(epochs == 0 || epochs * static_cast<double>(steps_per_epoch) >= 1, "--", name, ": ", epochs,
                  " epochs is less than one step (an epoch is ", steps_per_epoch, " steps of ", global_batch,
                  " images); use 0 or at least ", 1.0 / static_cast<double>(steps_per_epoch));
    if (!config.resume.empty()) {
      const persist::Checkpoint header = persist::read_checkpoint_header(config.resume);
      const TrainConfig theirs = config_of(header, config.resume);
      check_compatible(theirs, config, config.resume);
      check_kept_on_resume(theirs, config, config.resume);
      check_run_id(header, config);
      check_global_batch(header, global_batch, world, d.train.size(), config.resume);
    }
  });
  check_same_dataset(comm, d.train);
  return d;
}

void log_datasets(const TrainConfig& config, const Datasets& d) {
  HCL_LOG(info) << "data: " << name_of(config.dataset) << " " << config.train_split << " " << d.train.size()
                << " images of " << d.train.channels() << "x" << d.train.height() << "x" << d.train.width()
                << ", test " << d.test.size() << ", kNN bank " << d.knn_bank.size();
  if (const data::ImageFolder* f = d.train.folder.get())
    HCL_LOG(info) << "data: image folder " << f->index().root << "/" << f->index().split << " ("
                  << f->index().classes.size() << " classes; index " << (f->index().from_cache ? "from the cache" : "scanned")
                  << (f->index().other_files > 0 ? ", " + std::to_string(f->index().other_files) +
                                                      " files not named .jpg/.jpeg/.png left out, such as " +
                                                      f->index().other_example
                                                : "")
                  << "), decoded by " << f->options().workers() << " worker thread(s) per rank"
                  << (f->options().skip_bad_images() ? ", bad images skipped" : "");
}

// The train split's index, kept in the run's folder so that the next run or a resume need not scan
// a large folder again (rank 0; after the output folder is prepared).
void save_index_cache(const TrainConfig& config, const Datasets& d, int rank) {
  if (rank == 0 && d.train.folder) data::write_index_cache(d.train.folder->index(), config.folder_options(1).index_cache);
}

StepOptions step_options(const TrainConfig& config, const torch::Device& device) {
  return StepOptions()
      .accumulate(config.accumulate)
      .view_forward(config.view_forward)
      .bf16(config.precision == Precision::Bf16)
      .finite_check(config.finite_check)
      .max_skipped_steps(config.max_skipped_steps)
      .sync_bn(config.sync_bn)
      .objective_comm(config.objective_comm)
      .bucket_bytes(config.bucket_mb << 20)
      .overlap(device.is_cuda())  // CPU: buckets after backward
      .cuda_graph(config.cuda_graph);
}

// LARS scales the base learning rate by global batch / 256 (SimCLR).
OptimizerOptions optimizer_options(const TrainConfig& config, int world) {
  const int64_t global_batch = config.batch_size * world;
  const double lr = config.optimizer == OptimizerKind::Lars ? config.lr * global_batch / 256.0 : config.lr;
  return OptimizerOptions()
      .kind(config.optimizer)
      .lr(lr)
      .weight_decay(config.weight_decay)
      .momentum(config.momentum);
}

// "1 block shift", "3 block shifts".
void log_model(const TrainConfig& config, TrainStep& step) {
  int64_t parameters = 0;
  for (const auto& p : step.model()->parameters()) parameters += p.numel();
  HCL_LOG(info) << "model: " << name_of(config.arch) << " (" << name_of(config.stem) << " stem), "
                << parameters << " parameters, " << (config.sync_bn ? "SyncBatchNorm" : "per-rank BatchNorm")
                << ", " << (step.comm().world_size() == 1 ? std::string("no gradient buckets (one rank)")
                                                          : std::to_string(step.data_parallel().bucket_count()) +
                                                                " gradient bucket(s)")
                << ", "
                << (step.optimizer().fused() ? "fused" : "foreach") << " optimizer kernels";
  HCL_LOG(info) << "objective: " << name_of(config.estimator) << " estimator, the other ranks' views by "
                << how_views_meet(config.objective_comm, step.comm().world_size());
  if (step.graph_refusal().empty())
    HCL_LOG(info) << "CUDA graph: on (steps replayed from one graph after " << step.options().graph_warmup_steps()
                  << " eager steps)";
  else
    HCL_LOG(info) << "CUDA graph: off: " << step.graph_refusal();
}

data::TwoViewAugmenter make_augmenter(const TrainConfig& config, const data::Dataset& train) {
  const auto [mean, stddev] = data::dataset_normalization(config.dataset, train.channels());
  return data::TwoViewAugmenter(data::AugmentOptions()
                                    .output_size(config.crop_size > 0 ? config.crop_size : train.height())
                                    .scale_min(config.crop_scale_min)
                                    .blur_p(config.blur_p)
                                    .mean(mean)
                                    .stddev(stddev),
                                static_cast<uint64_t>(config.seed));
}

int64_t count_steps(const TrainConfig& config, int64_t steps_per_epoch) {
  const int64_t steps = steps_per_epoch * config.epochs;
  return config.max_steps > 0 ? std::min(steps, config.max_steps) : steps;
}

}  // namespace hcl::train
