// Checkpoints: model, optimizer, training position and configuration in one file, written by rank
// 0 to a temporary file that is flushed and then renamed (a run killed while writing leaves the
// previous checkpoint intact). The file carries a magic, its length and a CRC-32, so a truncated
// or corrupt checkpoint is refused with a clear error instead of loading garbage.
//
// All randomness of a run derives from (seed, epoch, step, image index), so the position below
// is the whole random state: resuming continues exactly.
#pragma once

#include <torch/torch.h>

#include <string>

#include "train/config.h"

namespace hcl::train {

struct TrainPosition {
  int64_t epoch = 0;        // epoch of the next step
  int64_t step = 0;         // step within that epoch of the next step
  int64_t global_step = 0;  // optimizer steps done
};

struct Checkpoint {
  TrainPosition position;
  TrainConfig config;
  // Images per step over all ranks (--batch-size x ranks): a step of the position means this many
  // images. 0: not recorded (files written before it was, or by tools that do not train).
  int64_t global_batch = 0;
};

// Writes atomically; `optimizer` may be null (model-only files); `global_batch` 0 is not recorded.
void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, const TrainPosition& position,
                     const TrainConfig& config, int64_t global_batch = 0);

// Throws hcl::Error when `checkpoint`'s model identity (arch, dimensions) differs from `expected`,
// naming the difference.
void check_compatible(const Checkpoint& checkpoint, const TrainConfig& expected, const std::string& path);

// Whether `path` starts with the checkpoint magic (reads 8 bytes; says nothing of the rest).
bool has_checkpoint_magic(const std::string& path);

// Reads the configuration and position only.
Checkpoint read_checkpoint_header(const std::string& path);

// Loads into `model` (and `optimizer` when given). Throws hcl::Error for a missing, truncated or
// corrupt file, or one whose model identity (arch, dimensions) differs from `expected`, naming the
// difference.
Checkpoint load_checkpoint(const std::string& path, torch::nn::Module& model,
                           torch::optim::Optimizer* optimizer, const TrainConfig& expected);

}  // namespace hcl::train
