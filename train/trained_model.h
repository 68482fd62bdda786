// A trained model and the configuration it was trained with, read from an hcl-train checkpoint or
// an hcl-export file (persist/ holds the files; here their JSON configuration becomes a typed
// TrainConfig and the model it describes is built). Also the one check that a checkpoint fits a
// configuration's model.
#pragma once

#include <string>

#include "model/contrastive_model.h"
#include "persist/checkpoint.h"
#include "persist/export.h"
#include "train/config.h"

namespace hcl::train {

struct TrainedModel {
  TrainConfig config;
  model::ContrastiveModel model;
};

// The checkpoint's configuration, typed; hcl::Error naming the file for one hcl-train cannot read.
TrainConfig config_of(const persist::Checkpoint& checkpoint, const std::string& path);

// Throws hcl::Error when the model identity (arch, dimensions) of the checkpoint `path`, whose
// configuration is `theirs`, differs from `expected`'s, naming the difference.
void check_compatible(const TrainConfig& theirs, const TrainConfig& expected, const std::string& path);

// What an export says of a model trained with `config`.
persist::ExportDescription export_description(const TrainConfig& config);

// Builds the model an hcl-train checkpoint describes and loads its weights, on the CPU, with plain
// BatchNorm (the same parameter and buffer names). Throws hcl::Error for anything else.
TrainedModel load_checkpoint_model(const std::string& path);

// The same for a checkpoint or an exported file (with its JSON beside it; encoder weights only).
TrainedModel load_trained_model(const std::string& path);

}  // namespace hcl::train
