// hcl-train's resume policy: what a resumed run must keep (the options that define it, its global
// batch), loading the checkpoint into the step, and trimming metrics.jsonl to the checkpoint's step.
#pragma once

#include <cstdint>
#include <string>

#include "persist/checkpoint.h"
#include "train/config.h"
#include "train/train_step.h"

namespace hcl::train {

// Throws hcl::Error naming the first option that a resumed run must keep but `ours` changes.
void check_kept_on_resume(const TrainConfig& theirs, const TrainConfig& ours, const std::string& path);
// Throws hcl::Error when the checkpoint was written at another global batch (or, for older
// checkpoints that do not record it, when its position falls outside an epoch at this one).
void check_global_batch(const persist::Checkpoint& c, int64_t global_batch, int world, int64_t images,
                        const std::string& path);
// A new run's id: its start time (UTC) and 64 random bits, e.g. 20261204T161500-3f9a0c1b2d4e5f60.
// A run keeps it through every resume (config.json and every checkpoint hold it).
std::string new_run_id();
// Throws hcl::Error when `c`, resumed from --out itself, belongs to another run than the one whose
// config.json is there (their run ids differ; files without ids are not checked).
void check_run_id(const persist::Checkpoint& c, const TrainConfig& config);
// The checkpoint resumed from (model and optimizer loaded; its position is where to start), or an
// empty one (position at the beginning, no run id) when starting afresh.
persist::Checkpoint resume_if_asked(const TrainConfig& config, TrainStep& step);
// After a resume, rank 0 drops the records of metrics.jsonl past the checkpoint's step.
persist::TrainPosition trim_metrics(const TrainConfig& config, const persist::TrainPosition& position,
                                    bool rank0);

}  // namespace hcl::train
