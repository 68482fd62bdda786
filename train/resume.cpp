// hcl-train's resume policy (train/resume.h).
#include "train/resume.h"

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/check.h"
#include "core/job.h"
#include "core/log.h"
#include "train/trained_model.h"

namespace hcl::train {

// Options that a resumed run must keep: they define its objective, data, randomness and schedule,
// so changing them would silently make a different run. Everything else (--epochs, --max-steps,
// intervals, logging, threads, timeouts, device, backend, --batch-size per rank at the same global
// batch) may change. The README and --help say the same.
namespace {
constexpr const char* kKeptOnResume[] = {
    "estimator", "temperature", "tau-plus", "beta", "beta-schedule", "seed", "lr", "lr-schedule",
    "weight-decay", "momentum", "warmup-epochs", "view-forward", "sync-bn", "crop-scale-min", "blur-p",
    "train-split", "precision"};
}  // namespace

void check_kept_on_resume(const TrainConfig& theirs, const TrainConfig& ours, const std::string& path) {
  const nlohmann::json a = theirs.to_json(), b = ours.to_json();
  for (const char* key : kKeptOnResume)
    HCL_REQUIRE(a.at(key) == b.at(key), "--resume: --", key, " is ", a.at(key).dump(), " in ", path, " but ",
                b.at(key).dump(), " here; a resumed run keeps it (start a new run in another --out to change it)");
}

// A step of the checkpoint's position counts its global batch of images: resuming with another
// global batch would put the position elsewhere in the data (or past the epoch's end). Checkpoints
// that do not record it (older ones) are checked as far as they can be: the position must fall
// inside an epoch at this global batch.
void check_global_batch(const persist::Checkpoint& c, int64_t global_batch, int world, int64_t images,
                        const std::string& path) {
  if (c.global_batch > 0) {
    const int64_t per_rank = c.global_batch % world == 0 ? c.global_batch / world : 0;
    HCL_REQUIRE(c.global_batch == global_batch, "--resume: the global batch is ", c.global_batch, " images in ",
                path, " but ", global_batch, " here (--batch-size ", global_batch / world, " x ", world,
                " ranks); a resumed run keeps it (",
                per_rank >= 2 ? detail::concat("use --global-batch ", c.global_batch, ", or ")
                              : std::string(),
                "start a new run in another --out)");
  }
  // The position must fall inside an epoch of this dataset (fewer images than the run had, or
  // another global batch for checkpoints that do not record it, would put it past the end).
  const int64_t steps_per_epoch = images / global_batch;
  HCL_REQUIRE(c.position.step < steps_per_epoch, "--resume: ", path, " stopped at step ", c.position.step,
              " of an epoch, but an epoch of this dataset (", images, " images) has only ", steps_per_epoch,
              " steps of ", global_batch, " images; resume with the data",
              c.global_batch > 0 ? "" : " and the global batch", " it was trained with");
  if (c.global_batch > 0) return;
  if (job::rank() == 0)
    HCL_LOG(warning) << "--resume: " << path << " does not record its global batch (written by an older hcl); "
                     << "resuming with " << global_batch << " images per step, unchecked";
}

std::string new_run_id() {
  std::random_device random;
  const unsigned long long bits = (static_cast<unsigned long long>(random()) << 32) ^ random();
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char id[40];
  const size_t n = std::strftime(id, sizeof id, "%Y%m%dT%H%M%S", &utc);
  std::snprintf(id + n, sizeof id - n, "-%016llx", bits);
  return id;
}

void check_run_id(const persist::Checkpoint& c, const TrainConfig& config) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (c.run_id.empty() || !fs::equivalent(fs::path(config.resume).parent_path(), config.out, ec)) return;
  const fs::path written = fs::path(config.out) / "config.json";
  std::ifstream in(written);
  const nlohmann::json theirs = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (theirs.is_discarded() || !theirs.is_object() || !theirs.contains("run-id") || !theirs["run-id"].is_string()) return;
  const std::string folder_run = theirs["run-id"].get<std::string>();
  HCL_REQUIRE(folder_run == c.run_id, "--resume: ", config.resume, " belongs to run ", c.run_id, " but ",
              written.string(), " to run ", folder_run,
              ": the folder holds another run's checkpoint (start afresh with --force, or resume that checkpoint "
              "from its own folder)");
}

persist::Checkpoint resume_if_asked(const TrainConfig& config, TrainStep& step) {
  if (config.resume.empty()) return {};
  const persist::Checkpoint c =
      persist::load_checkpoint(config.resume, *step.model(), &step.optimizer().checkpoint_state(),
                               [&](const persist::Checkpoint& header) {
                                 check_compatible(config_of(header, config.resume), config, config.resume);
                               });
  step.optimizer().state_loaded();
  step.data_parallel().verify_replicas();
  HCL_LOG(info) << "resumed from " << config.resume << " at epoch " << c.position.epoch << ", step "
                << c.position.step << " (" << c.position.global_step << " steps done)";
  return c;
}

// After a resume, metrics.jsonl keeps one record per step: records past the checkpoint's step
// (written by the interrupted run after its last checkpoint) are dropped, so the resumed run's
// records follow on without repeats. Rank 0 rewrites the file (temporary file, then rename).
persist::TrainPosition trim_metrics(const TrainConfig& config, const persist::TrainPosition& position,
                                    bool rank0) {
  const std::filesystem::path path = std::filesystem::path(config.out) / "metrics.jsonl";
  if (!rank0 || config.resume.empty() || !std::filesystem::is_regular_file(path)) return position;
  std::ifstream in(path);
  std::string kept, line;
  int64_t dropped = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    // A record cut short by a kill (not JSON) is dropped as well.
    if (record.is_discarded() || !record.contains("step") || record["step"].get<int64_t>() > position.global_step) {
      ++dropped;
      continue;
    }
    kept += line + "\n";
  }
  if (dropped == 0) return position;
  write_file_atomically(path.string(), kept);
  HCL_LOG(info) << "metrics.jsonl: dropped " << dropped << " record(s) past the checkpoint's step "
                << position.global_step;
  return position;
}

}  // namespace hcl::train
