// Linear evaluation of a pretrained encoder (the papers' linear probe): the encoder frozen, a linear
// classifier trained with Adam (lr 1e-3, weight decay 1e-6, 100 epochs by default), top-1 and top-5
// accuracy on the test split. What the classifier reads is the protocol (ProbeInput):
//   features   encoder features computed once, without augmentation (every rank embeds a share);
//   augmented  encoder features of a random resized crop + horizontal flip of every train image,
//              drawn anew each epoch (the reference's linear.py; each rank embeds a share of every
//              batch); the test images unaugmented;
//   pixels     the normalised raw pixels, no encoder: the baseline a representation must beat.
// Every input is standardised per dimension with the train features' mean and standard deviation.
// All ranks then train the identical classifier from the same seed.
#pragma once

#include <torch/torch.h>

#include "core/named_enum.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "model/contrastive_model.h"

namespace hcl::eval {

enum class ProbeInput { Features, Augmented, Pixels };

struct LinearEvalOptions {
  TORCH_ARG(ProbeInput, input) = ProbeInput::Features;
  TORCH_ARG(int64_t, epochs) = 100;
  TORCH_ARG(int64_t, batch_size) = 512;
  TORCH_ARG(double, lr) = 1e-3;
  TORCH_ARG(double, weight_decay) = 1e-6;
  TORCH_ARG(double, crop_scale_min) = 0.08;  // augmented: smallest crop (torchvision's default)
  TORCH_ARG(int64_t, seed) = 0;
};

struct LinearEvalResult {
  double top1 = 0, top5 = 0, train_top1 = 0;  // train_top1: on the unaugmented train inputs
  int64_t train_images = 0, test_images = 0, input_dim = 0;
};

// Collective. `model` is not used (and may be empty) for ProbeInput::Pixels.
LinearEvalResult linear_evaluation(model::ContrastiveModel& model, dist::Communicator& comm,
                                   const data::Dataset& train, const data::Dataset& test,
                                   data::DatasetKind dataset, const LinearEvalOptions& options,
                                   const torch::Device& device);

}  // namespace hcl::eval

template <>
struct hcl::EnumNames<hcl::eval::ProbeInput> {
  static constexpr NamedValue<eval::ProbeInput> table[] = {
      {eval::ProbeInput::Features, "features", "encoder features computed once, no augmentation"},
      {eval::ProbeInput::Augmented, "augmented",
       "encoder features of a random crop + flip of each train image, new every epoch, as the reference's linear.py"},
      {eval::ProbeInput::Pixels, "pixels", "normalised raw pixels, no encoder: the baseline"}};
};
