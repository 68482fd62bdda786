// Linear evaluation of a pretrained encoder (the paper's protocol): the encoder frozen, a linear
// classifier on its features trained with Adam (lr 1e-3, weight decay 1e-6), top-1 and top-5
// accuracy on the test split. Features are computed once, without augmentation (every rank embeds
// a share; all ranks then train the identical classifier from the same seed).
#pragma once

#include <torch/torch.h>

#include "data/dataset.h"
#include "dist/communicator.h"
#include "model/contrastive_model.h"

namespace hcl::train {

struct LinearEvalOptions {
  TORCH_ARG(int64_t, epochs) = 100;
  TORCH_ARG(int64_t, batch_size) = 512;
  TORCH_ARG(double, lr) = 1e-3;
  TORCH_ARG(double, weight_decay) = 1e-6;
  TORCH_ARG(int64_t, seed) = 0;
};

struct LinearEvalResult {
  double top1 = 0, top5 = 0, train_top1 = 0;
  int64_t train_images = 0, test_images = 0;
};

// Collective.
LinearEvalResult linear_evaluation(model::ContrastiveModel& model, dist::Communicator& comm,
                                   const data::Dataset& train, const data::Dataset& test,
                                   data::DatasetKind dataset, const LinearEvalOptions& options,
                                   const torch::Device& device);

}  // namespace hcl::train
