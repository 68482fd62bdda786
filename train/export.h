// Weights for Python users: the encoder's state_dict under torchvision's names, written with
// LibTorch's pickler so that torch.load returns a plain dict of tensors; and the reverse, so that
// hcl-eval reads exported files as well as checkpoints.
#pragma once

#include <torch/torch.h>

#include <string>

#include "model/contrastive_model.h"
#include "train/config.h"

namespace hcl::train {

// A trained model and the configuration it was trained with.
struct TrainedModel {
  TrainConfig config;
  model::ContrastiveModel model;
};

// Builds the model an hcl-train checkpoint describes and loads its weights, on the CPU, with plain
// BatchNorm (the same parameter and buffer names). Throws hcl::Error for anything else.
TrainedModel load_checkpoint_model(const std::string& path);

// The same for a checkpoint or an exported file (with its JSON beside it; encoder weights only).
TrainedModel load_trained_model(const std::string& path);

// Writes `path` (torch.load-able dict: encoder keys as torchvision's, head keys as head.<i>.*) and
// `path`.json (the training configuration and what the file holds).
void export_for_python(model::ContrastiveModel& model, const TrainConfig& config,
                       const std::string& path, bool with_head);

// Writes {"input": a fixed batch of 4 images, "features": the encoder's features in eval mode}.
void write_verification_sample(model::ContrastiveModel& model, const TrainConfig& config,
                               const std::string& path);

}  // namespace hcl::train
