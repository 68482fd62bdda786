// The pretraining model: an encoder and the reference's projection head
// Linear(features, hidden, no bias) -> BatchNorm1d -> ReLU -> Linear(hidden, out), returning the
// encoder features and the L2-normalised projection.
#pragma once

#include <torch/torch.h>

#include "model/encoder.h"

namespace hcl::model {

struct ProjectionHeadOptions {
  TORCH_ARG(int64_t, in_features) = 512;
  TORCH_ARG(int64_t, hidden) = 512;
  TORCH_ARG(int64_t, out) = 128;
  TORCH_ARG(NormFactory, norm);
};

class ProjectionHeadImpl : public torch::nn::Module {
 public:
  explicit ProjectionHeadImpl(const ProjectionHeadOptions& options);
  torch::Tensor forward(torch::Tensor features);

  // The reference's nn.Sequential: "0" (Linear), "1" (BatchNorm1d), "2" (ReLU), "3" (Linear).
  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(ProjectionHead);

struct ModelOptions {
  TORCH_ARG(EncoderOptions, encoder);
  TORCH_ARG(int64_t, head_hidden) = 512;
  TORCH_ARG(int64_t, projection_dim) = 128;
};

struct ModelOutput {
  torch::Tensor features;    // N x encoder feature dim
  torch::Tensor projection;  // N x projection_dim, unit rows
};

class ContrastiveModelImpl : public torch::nn::Module {
 public:
  explicit ContrastiveModelImpl(const ModelOptions& options);
  ModelOutput forward(torch::Tensor images);
  // Encoder features only (evaluation).
  torch::Tensor features(torch::Tensor images);

  std::shared_ptr<EncoderImpl> encoder;
  ProjectionHead head{nullptr};
};
TORCH_MODULE(ContrastiveModel);

}  // namespace hcl::model
