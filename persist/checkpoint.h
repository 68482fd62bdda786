// Checkpoints: model, optimizer, training position and configuration in one file, written by rank
// 0 to a temporary file that is flushed and then renamed (a run killed while writing leaves the
// previous checkpoint intact). The file carries a magic, its length and a CRC-32, so a truncated
// or corrupt checkpoint is refused with a clear error instead of loading garbage.
//
// All randomness of a run derives from (seed, epoch, step, image index), so the position below
// is the whole random state: resuming continues exactly.
//
// A checkpoint is written from a CheckpointState: the live tensors (save_checkpoint, synchronous)
// or a snapshot that training may go on changing (snapshot_checkpoint, for a background writer:
// persist/checkpoint_writer.h). Both give the same bytes for the same values.
//
// The configuration is kept as the JSON the trainer gives (TrainConfig::to_json); what it means,
// and whether a checkpoint fits a model, is train/'s to say (train/trained_model.h).
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace hcl::persist {

struct TrainPosition {
  int64_t epoch = 0;        // epoch of the next step
  int64_t step = 0;         // step within that epoch of the next step
  int64_t global_step = 0;  // optimizer steps done
};

struct Checkpoint {
  TrainPosition position;
  nlohmann::json config;  // the training configuration, as written (an object)
  // Images per step over all ranks (--batch-size x ranks): a step of the position means this many
  // images. 0: not recorded (files written before it was, or by tools that do not train).
  int64_t global_batch = 0;
  // The run that wrote it (made at its fresh start, kept by every resume; config.json holds it too):
  // "" where not recorded.
  std::string run_id;
};

// Everything one checkpoint file holds.
struct CheckpointState {
  std::vector<std::pair<std::string, torch::Tensor>> parameters, buffers;  // CPU tensors
  std::shared_ptr<torch::optim::Optimizer> optimizer;  // null: a model-only file
  TrainPosition position;
  nlohmann::json config;     // the training configuration (an object)
  int64_t global_batch = 0;  // images per step over all ranks; 0: not recorded
  std::string run_id;        // "": not recorded
};

// A copy of what a checkpoint of `model` and `optimizer` (may be null) holds, which nothing else
// changes: CUDA tensors are copied into pinned host memory (queued without blocking, then one
// synchronisation), CPU tensors cloned. The optimizer must have LibTorch's Adam or SGD state
// layout (torch::optim::Adam, SGD and their subclasses: the foreach and fused ones); its copy is
// a torch::optim::Adam or SGD over the same parameter objects (only their identities are
// written), holding copied state. Called on the thread that trains; throws hcl::InternalError for
// another optimizer type.
CheckpointState snapshot_checkpoint(torch::nn::Module& model, torch::optim::Optimizer* optimizer,
                                    const TrainPosition& position, const nlohmann::json& config,
                                    int64_t global_batch = 0, const std::string& run_id = "");

// Writes `state` atomically (serialised, length and CRC-32, `path`.tmp flushed then renamed; a
// failure throws hcl::Error naming the file and removes the .tmp). Safe on another thread as long
// as nothing changes `state`'s tensors meanwhile.
void write_checkpoint(const std::string& path, const CheckpointState& state);

// Writes the live state atomically (write_checkpoint without a copy); `optimizer` may be null
// (model-only files); `global_batch` 0 and `run_id` "" are not recorded.
void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, const TrainPosition& position,
                     const nlohmann::json& config, int64_t global_batch = 0, const std::string& run_id = "");

// Whether `path` starts with the checkpoint magic (reads 8 bytes; says nothing of the rest).
bool has_checkpoint_magic(const std::string& path);

// Reads the configuration and position only.
Checkpoint read_checkpoint_header(const std::string& path);

// Loads into `model` (and `optimizer` when given). Throws hcl::Error for a missing, truncated or
// corrupt file, or one that does not fit the model. `check` (optional) sees the header first, and
// throws to refuse the file before any tensor is copied (train/: another architecture).
Checkpoint load_checkpoint(const std::string& path, torch::nn::Module& model,
                           torch::optim::Optimizer* optimizer,
                           const std::function<void(const Checkpoint&)>& check = {});

}  // namespace hcl::persist
