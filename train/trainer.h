// hcl-train's work: pretraining with the global-batch objective across every rank of the job,
// with progress logs, metrics.jsonl, checkpoints and the kNN monitor.
#pragma once

#include <functional>
#include <string>

#include "dist/runtime.h"
#include "train/config.h"

namespace hcl::train {

struct TrainSummary {
  double knn_top1_before = -1, knn_top1_after = -1;  // -1: not evaluated
  double final_loss = 0;
  int64_t steps = 0;
  // The signal that stopped the run early (core/stop_signal.h; a checkpoint was written), or 0.
  int stopped_by_signal = 0;
};

// Runs the whole job on every rank (collective). `config` has been validated by the caller.
// Everything that bad input can break (datasets, batch size, the resume checkpoint) is checked on
// every rank first; then `prepare_output` runs on every rank (collective), before anything is
// written. A problem found there throws hcl::InputError on every rank alike; later failures throw
// hcl::Error.
TrainSummary run_training(const TrainConfig& config, const dist::Topology& topology,
                          const std::function<void()>& prepare_output);

}  // namespace hcl::train
