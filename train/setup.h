// hcl-train's set-up, everything before the first step: the rank's device, the step's communicator
// (once every rank is known to run the same configuration), the datasets (checked and agreed on by
// every rank before anything is written), the training step's options, the augmentation, the number
// of steps, and the start-up log lines.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "data/augment.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "dist/runtime.h"
#include "train/config.h"
#include "train/optim.h"
#include "train/train_step.h"

namespace hcl::train {

struct Datasets {
  data::Dataset train;     // what pretraining reads (an image folder: decoded on demand by its workers)
  data::Dataset test;      // the evaluation split, in memory (an image folder's: --knn-test-size decoded)
  data::Dataset knn_bank;  // labeled train images, in memory (an image folder's: --knn-bank-size decoded)
};

// This rank's device, with the thread count and fast math set.
torch::Device prepare_device(const TrainConfig& config, const dist::Topology& topology);
// The step's communicator over every rank of the job, once every rank is known to run the same
// configuration. Collective.
dist::Communicator open_communicator(const TrainConfig& config, const torch::Device& device);
// The datasets, with every input that bad options can break checked on every rank; a problem
// anywhere throws InputError on every rank alike. Collective.
Datasets load_datasets(dist::Communicator& comm, const TrainConfig& config, int local_ranks);
void log_datasets(const TrainConfig& config, const Datasets& d);
void save_index_cache(const TrainConfig& config, const Datasets& d, int rank);
StepOptions step_options(const TrainConfig& config, const torch::Device& device);
OptimizerOptions optimizer_options(const TrainConfig& config, int world);
void log_model(const TrainConfig& config, TrainStep& step);
data::TwoViewAugmenter make_augmenter(const TrainConfig& config, const data::Dataset& train);
// Steps of the whole run: --epochs of the sampler's steps, or --max-steps if fewer.
int64_t count_steps(const TrainConfig& config, int64_t steps_per_epoch);

}  // namespace hcl::train
