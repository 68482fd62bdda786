// Validation and JSON form of TrainConfig.
#include "train/config.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "core/check.h"
#include "core/paths.h"

namespace hcl::train {

// Upper ends of the options' ranges: every value that is stored (config.json, checkpoints) must
// be finite and read back as itself, and products such as epochs x steps per epoch, a bucket's
// bytes or the watchdog's nanoseconds must fit in 64 bits.
constexpr int64_t kMaxEpochs = 1000000;
constexpr int64_t kMaxSteps = int64_t{1} << 40;
constexpr int64_t kMaxImages = int64_t{1} << 30;
constexpr int64_t kMaxWidth = int64_t{1} << 20;
constexpr int64_t kMaxTimeout = 7 * 24 * 3600;  // a week
constexpr int64_t kMaxBucketMb = int64_t{1} << 16;
constexpr int64_t kMaxThreads = 4096;
constexpr int64_t kMaxSeed = (int64_t{1} << 53);  // exact in a JSON reader's double

#define HCL_OPTION_CHECK(cond, option, ...) HCL_REQUIRE(cond, "--" option ": ", __VA_ARGS__)

void TrainConfig::resolve_batch(int world, bool batch_size_given) {
  HCL_OPTION_CHECK(global_batch >= 0 && global_batch <= kMaxImages, "global-batch", "must be in [0, ", kMaxImages,
                   "] images (0: --batch-size per rank decides), got ", global_batch);
  if (global_batch == 0) {
    global_batch = batch_size * world;
    return;
  }
  HCL_OPTION_CHECK(global_batch % world == 0, "global-batch", global_batch, " images cannot be shared by ", world,
                   " ranks (each rank takes global-batch / ranks): use a multiple of ", world);
  HCL_OPTION_CHECK(!batch_size_given || batch_size * world == global_batch, "batch-size", batch_size,
                   " per rank x ", world, " ranks is not --global-batch ", global_batch,
                   " (give one of the two)");
  batch_size = global_batch / world;
}

void TrainConfig::validate() const {
  HCL_OPTION_CHECK(crop_scale_min > 0 && crop_scale_min <= 1, "crop-scale-min", "must be in (0, 1], got ", crop_scale_min);
  HCL_OPTION_CHECK(blur_p >= 0 && blur_p <= 1, "blur-p", "must be in [0, 1], got ", blur_p);
  HCL_OPTION_CHECK(projection_dim >= 1 && projection_dim <= kMaxWidth, "projection-dim", "must be in [1, ", kMaxWidth, "], got ", projection_dim);
  HCL_OPTION_CHECK(head_hidden >= 1 && head_hidden <= kMaxWidth, "head-hidden", "must be in [1, ", kMaxWidth, "], got ", head_hidden);
  HCL_OPTION_CHECK(std::isfinite(temperature) && temperature > 0, "temperature", "must be a finite number > 0, got ", temperature);
  HCL_OPTION_CHECK(tau_plus >= 0 && tau_plus < 1, "tau-plus", "must be in [0, 1), got ", tau_plus);
  HCL_OPTION_CHECK(std::isfinite(beta) && beta >= 0, "beta", "must be a finite number >= 0, got ", beta);
  HCL_OPTION_CHECK(column_chunk >= 0 && column_chunk <= kMaxImages, "column-chunk", "must be in [0, ", kMaxImages, "] (0: unchunked), got ", column_chunk);
  HCL_OPTION_CHECK(batch_size >= 2 && batch_size <= kMaxImages, "batch-size", "must be in [2, ", kMaxImages, "] images per rank, got ", batch_size);
  HCL_OPTION_CHECK(global_batch >= 0 && global_batch <= kMaxImages, "global-batch", "must be in [0, ", kMaxImages, "], got ", global_batch);
  HCL_OPTION_CHECK(accumulate >= 1, "accumulate", "must be >= 1, got ", accumulate);
  HCL_OPTION_CHECK(batch_size % accumulate == 0, "accumulate", accumulate,
                   " does not divide the batch size ", batch_size);
  HCL_OPTION_CHECK(batch_size / accumulate >= 2, "accumulate", "leaves fewer than 2 images per micro-batch");
  HCL_OPTION_CHECK(epochs >= 1 && epochs <= kMaxEpochs, "epochs", "must be in [1, ", kMaxEpochs, "], got ", epochs);
  HCL_OPTION_CHECK(max_steps >= 0 && max_steps <= kMaxSteps, "max-steps", "must be in [0, ", kMaxSteps, "] (0: no limit), got ", max_steps);
  HCL_OPTION_CHECK(std::isfinite(lr) && lr > 0, "lr", "must be a finite number > 0, got ", lr);
  HCL_OPTION_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, "weight-decay", "must be a finite number >= 0, got ", weight_decay);
  HCL_OPTION_CHECK(momentum >= 0 && momentum < 1, "momentum", "must be in [0, 1), got ", momentum);
  HCL_OPTION_CHECK(warmup_epochs >= 0 && warmup_epochs <= kMaxEpochs, "warmup-epochs", "must be in [0, ", kMaxEpochs, "], got ", warmup_epochs);
  HCL_OPTION_CHECK(collective_timeout >= 1 && collective_timeout <= kMaxTimeout, "collective-timeout", "must be in [1, ", kMaxTimeout, "] seconds, got ", collective_timeout);
  HCL_OPTION_CHECK(max_skipped_steps >= 1 && max_skipped_steps <= kMaxSteps, "max-skipped-steps", "must be in [1, ", kMaxSteps, "], got ", max_skipped_steps);
  HCL_OPTION_CHECK(bucket_mb >= 1 && bucket_mb <= kMaxBucketMb, "bucket-mb", "must be in [1, ", kMaxBucketMb, "], got ", bucket_mb);
  HCL_OPTION_CHECK(threads >= 0 && threads <= kMaxThreads, "threads", "must be in [0, ", kMaxThreads, "], got ", threads);
  HCL_OPTION_CHECK(max_image_pixels >= 0, "max-image-pixels", "must be >= 0 (0: no limit), got ", max_image_pixels);
  HCL_OPTION_CHECK(workers >= 0 && workers <= kMaxThreads, "workers", "must be in [0, ", kMaxThreads, "], got ", workers);
  HCL_OPTION_CHECK(crop_size == 0 || (crop_size >= 8 && crop_size <= 4096), "crop-size",
                   "must be 0 (the images' size) or in [8, 4096] pixels, got ", crop_size);
  HCL_OPTION_CHECK(seed >= 0 && seed <= kMaxSeed, "seed", "must be in [0, ", kMaxSeed, "], got ", seed);
  HCL_OPTION_CHECK(log_interval >= 1 && log_interval <= kMaxSteps, "log-interval", "must be in [1, ", kMaxSteps, "], got ", log_interval);
  HCL_OPTION_CHECK(eval_interval >= 0 && eval_interval <= kMaxEpochs, "eval-interval", "must be in [0, ", kMaxEpochs, "], got ", eval_interval);
  HCL_OPTION_CHECK(eval_min_seconds >= 0 && eval_min_seconds <= kMaxTimeout, "eval-min-seconds", "must be in [0, ", kMaxTimeout, "] seconds, got ", eval_min_seconds);
  HCL_OPTION_CHECK(knn_k >= 1 && knn_k <= kMaxImages, "knn-k", "must be in [1, ", kMaxImages, "], got ", knn_k);
  HCL_OPTION_CHECK(std::isfinite(knn_temperature) && knn_temperature > 0, "knn-temperature", "must be a finite number > 0, got ", knn_temperature);
  HCL_OPTION_CHECK(knn_bank_size >= 0 && knn_bank_size <= kMaxImages, "knn-bank-size", "must be in [0, ", kMaxImages, "], got ", knn_bank_size);
  HCL_OPTION_CHECK(knn_test_size >= 0 && knn_test_size <= kMaxImages, "knn-test-size", "must be in [0, ", kMaxImages, "], got ", knn_test_size);
  HCL_OPTION_CHECK(checkpoint_interval >= 0 && checkpoint_interval <= kMaxEpochs, "checkpoint-interval", "must be in [0, ", kMaxEpochs, "], got ", checkpoint_interval);
  HCL_OPTION_CHECK(checkpoint_min_seconds >= 0 && checkpoint_min_seconds <= kMaxTimeout, "checkpoint-min-seconds", "must be in [0, ", kMaxTimeout, "] seconds, got ", checkpoint_min_seconds);
  HCL_OPTION_CHECK(!out.empty(), "out", "must name a folder");
  // Paths are stored as JSON text (config.json, checkpoints): UTF-8, within the system's limits.
  require_usable_path("--data-dir", data_dir);
  require_usable_path("--out", out);
  require_usable_path("--resume", resume);
  bool known_split = false;  // (load_dataset names the choices; this check comes before any JSON)
  for (const char* split : data::dataset_info(dataset).splits) known_split = known_split || (split && train_split == split);
  HCL_OPTION_CHECK(known_split, "train-split", "not a split of ", name_of(dataset), ": '", train_split.substr(0, 40), "'");
}

int default_decode_workers(int local_ranks) {
  const char* per_task = std::getenv("SLURM_CPUS_PER_TASK");
  if (const int given = per_task != nullptr ? std::atoi(per_task) : 0; given > 0) return given;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  const int cpus = sched_getaffinity(0, sizeof allowed, &allowed) == 0
                       ? CPU_COUNT(&allowed)
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cpus / std::max(1, local_ranks));
}

data::FolderLoadOptions TrainConfig::folder_options(int local_ranks) const {
  data::FolderLoadOptions o;
  o.crop_size = crop_size > 0 ? crop_size : data::dataset_info(dataset).size;
  o.workers = workers > 0 ? static_cast<int>(workers) : default_decode_workers(local_ranks);
  o.skip_bad_images = skip_bad_images;
  o.max_image_pixels = max_image_pixels;
  o.index_cache = out + "/image-index";
  return o;
}

void TrainConfig::check_environment() const {
  const bool cuda = torch::cuda::is_available();
  HCL_OPTION_CHECK(device != DeviceChoice::Cuda || cuda, "device", "cuda, but no CUDA device is available to this rank");
  if (device == DeviceChoice::Cuda || (device == DeviceChoice::Auto && cuda)) return;
  const char* why = device == DeviceChoice::Cpu ? "the device is the CPU (--device cpu)"
                                                : "no CUDA device is available to this rank, so the device is the CPU";
  HCL_OPTION_CHECK(precision != Precision::Bf16, "precision", "bf16 needs a CUDA device, but ", why, "; use fp32");
  HCL_OPTION_CHECK(cuda_graph != CudaGraphMode::On, "cuda-graph", "on needs a CUDA device, but ", why, "; use auto or off");
  HCL_OPTION_CHECK(backend != dist::BackendChoice::Nccl, "backend", "nccl needs a CUDA device, but ", why,
                   "; use auto or mpi");
}

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j;
  visit_fields(*this, [&](const char* key, const auto& field, const char*) {
    if constexpr (is_named_enum_v<std::decay_t<decltype(field)>>)
      j[key] = name_of(field);
    else
      j[key] = field;
  });
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  TrainConfig c;
  size_t known = 0;
  visit_fields(c, [&](const char* key, auto& field, const char*) {
    if (!j.contains(key)) return;
    ++known;
    using T = std::decay_t<decltype(field)>;
    try {
      if constexpr (is_named_enum_v<T>)
        field = parse<T>(key, j.at(key).get<std::string>());
      else
        j.at(key).get_to(field);
    } catch (const nlohmann::json::exception&) {
      throw Error(std::string("--") + key + ": wrong type in JSON: " + j.at(key).dump());
    }
  });
  if (known != j.size())
    for (const auto& item : j.items()) {
      bool found = false;
      visit_fields(c, [&](const char* key, auto&, const char*) { found = found || item.key() == key; });
      HCL_REQUIRE(found, "unknown option '", item.key(), "' in the configuration");
    }
  return c;
}

model::ModelOptions TrainConfig::model_options(const model::NormFactory& norm) const {
  return model::ModelOptions()
      .encoder(model::EncoderOptions()
                   .arch(arch)
                   .stem(stem)
                   .in_channels(data::dataset_info(dataset).channels)
                   .norm(norm))
      .head_hidden(head_hidden)
      .projection_dim(projection_dim);
}

nlohmann::json TrainConfig::model_identity() const {
  return {{"dataset", name_of(dataset)}, {"arch", name_of(arch)},
          {"stem", name_of(stem)},       {"projection-dim", projection_dim},
          {"head-hidden", head_hidden},  {"optimizer", name_of(optimizer)}};
}

}  // namespace hcl::train
