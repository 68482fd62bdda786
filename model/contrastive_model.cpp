// Projection head and the encoder + head model.
#include "model/contrastive_model.h"

#include "core/check.h"

namespace hcl::model {

namespace nn = torch::nn;

ProjectionHeadImpl::ProjectionHeadImpl(const ProjectionHeadOptions& o) {
  HCL_REQUIRE(o.in_features() > 0 && o.hidden() > 0 && o.out() > 0,
              "projection head dimensions must be positive, got ", o.in_features(), " -> ",
              o.hidden(), " -> ", o.out());
  layers = register_module("layers", nn::Sequential());
  layers->push_back(nn::Linear(nn::LinearOptions(o.in_features(), o.hidden()).bias(false)));
  layers->push_back(o.norm().norm1d(o.hidden()));
  layers->push_back(nn::Functional(torch::relu));
  layers->push_back(nn::Linear(nn::LinearOptions(o.hidden(), o.out()).bias(true)));
  init_like_torchvision(*this);
}

torch::Tensor ProjectionHeadImpl::forward(torch::Tensor features) { return layers->forward(features); }

ContrastiveModelImpl::ContrastiveModelImpl(const ModelOptions& options) {
  encoder = register_module("encoder", make_encoder(options.encoder()));
  head = register_module("head", ProjectionHead(ProjectionHeadOptions()
                                                    .in_features(encoder->feature_dim())
                                                    .hidden(options.head_hidden())
                                                    .out(options.projection_dim())
                                                    .norm(options.encoder().norm())));
}

ModelOutput ContrastiveModelImpl::forward(torch::Tensor images) {
  torch::Tensor features = encoder->forward(images);
  torch::Tensor projection = head->forward(features);
  // Normalised in float32 even under autocast (the objective divides by the temperature next).
  const auto dtype = projection.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  projection = torch::nn::functional::normalize(projection.to(dtype),
                                                torch::nn::functional::NormalizeFuncOptions().dim(1));
  return {features, projection};
}

torch::Tensor ContrastiveModelImpl::features(torch::Tensor images) { return encoder->forward(images); }

}  // namespace hcl::model
