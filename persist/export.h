// Weights for Python users: the encoder's state_dict under torchvision's names, written with
// LibTorch's pickler so that torch.load returns a plain dict of tensors, with a JSON description
// beside it; and the reverse, so that hcl-eval reads exported files as well as checkpoints. The
// training configuration travels as JSON; building the model it describes is train/'s
// (train/trained_model.h).
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <string>

#include "data/dataset.h"
#include "model/contrastive_model.h"
#include "model/encoder.h"

namespace hcl::persist {

// What the JSON beside an exported file says of the model.
struct ExportDescription {
  model::Arch arch = model::Arch::ResNet18;
  model::Stem stem = model::Stem::Cifar;
  data::DatasetKind dataset = data::DatasetKind::FashionMnist;  // the input's channels and size
  nlohmann::json config;  // the training configuration (TrainConfig::to_json)
};

// Writes `path` (torch.load-able dict: encoder keys as torchvision's, head keys as head.<i>.*) and
// `path`.json (the description and what the file holds).
void export_for_python(model::ContrastiveModel& model, const ExportDescription& description,
                       const std::string& path, bool with_head);

// Writes {"input": a fixed batch of 4 images of `dataset`'s shape, "features": the encoder's
// features in eval mode}.
void write_verification_sample(model::ContrastiveModel& model, data::DatasetKind dataset,
                               const std::string& path);

// Whether `path` is an exported file: its JSON beside it and no checkpoint magic.
bool is_export(const std::string& path);

// The training configuration in the JSON beside an exported file (nlohmann's exceptions for JSON
// that is not hcl-export's).
nlohmann::json read_export_config(const std::string& path);

// Loads an exported file's encoder weights into `model` (every key present, every shape equal);
// throws hcl::Error naming the file, or LibTorch's errors for a file that is not a pickled dict.
void load_exported_encoder(const std::string& path, model::ContrastiveModel& model);

}  // namespace hcl::persist
