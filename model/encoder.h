// Encoders: ResNet-18/34/50 with torchvision's module names (conv1, bn1, layer1.0.conv1, ...), a
// CIFAR stem (3x3 conv, stride 1, no max-pool: the reference's) or an ImageNet stem (7x7 stride 2
// and max-pool), any number of input channels, no classifier; and a small conv net for tests and
// CPU demos. All map N x C x H x W images to N x feature_dim() features.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "core/named_enum.h"

namespace hcl::model {

enum class Stem { Cifar, ImageNet };
enum class Arch { ResNet18, ResNet34, ResNet50, Small };

// Makes the normalisation layers (torchvision's norm_layer): BatchNorm by default; the trainer
// passes SyncBatchNorm. Each returns a module with BatchNorm's parameters and buffers.
struct NormFactory {
  std::function<torch::nn::AnyModule(int64_t channels)> norm2d = [](int64_t c) {
    return torch::nn::AnyModule(torch::nn::BatchNorm2d(c));
  };
  std::function<torch::nn::AnyModule(int64_t features)> norm1d = [](int64_t f) {
    return torch::nn::AnyModule(torch::nn::BatchNorm1d(f));
  };
};

struct EncoderOptions {
  TORCH_ARG(Arch, arch) = Arch::ResNet18;
  TORCH_ARG(Stem, stem) = Stem::Cifar;
  TORCH_ARG(int64_t, in_channels) = 3;
  // Zero the last BatchNorm weight of each residual branch (each block starts as the identity).
  TORCH_ARG(bool, zero_init_residual) = false;
  TORCH_ARG(NormFactory, norm);
};

class EncoderImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor images) = 0;
  virtual int64_t feature_dim() const = 0;
};

// Throws hcl::Error naming an unknown arch or a bad channel count.
std::shared_ptr<EncoderImpl> make_encoder(const EncoderOptions& options);

// ResNet with torchvision's layout. Blocks: BasicBlock (18, 34) or Bottleneck (50).
class ResNetImpl : public EncoderImpl {
 public:
  ResNetImpl(const std::vector<int64_t>& blocks_per_stage, bool bottleneck, const EncoderOptions& options);
  torch::Tensor forward(torch::Tensor images) override;
  int64_t feature_dim() const override { return feature_dim_; }

 private:
  torch::nn::Sequential make_stage(int64_t planes, int64_t blocks, int64_t stride, const NormFactory& norm);

  bool bottleneck_;
  bool imagenet_stem_;
  int64_t in_planes_ = 64;
  int64_t feature_dim_ = 0;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::AnyModule bn1;
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
};

// Three 3x3 conv-BN-ReLU layers (32, 64, 128 channels; strides 1, 2, 2) and global average pool.
class SmallConvNetImpl : public EncoderImpl {
 public:
  explicit SmallConvNetImpl(const EncoderOptions& options);
  torch::Tensor forward(torch::Tensor images) override;
  int64_t feature_dim() const override { return 128; }

 private:
  torch::nn::Sequential body{nullptr};
};

// Kaiming normal (fan_out, relu) for convolutions, and every normalisation layer's weight 1 and
// bias 0, as torchvision.
void init_like_torchvision(torch::nn::Module& module);

// Stores every 4-d parameter and buffer in channels_last (the fast layout for cuDNN).
void to_channels_last(torch::nn::Module& module);

}  // namespace hcl::model

template <>
struct hcl::EnumNames<hcl::model::Arch> {
  static constexpr NamedValue<model::Arch> table[] = {
      {model::Arch::ResNet18, "resnet18"},
      {model::Arch::ResNet34, "resnet34"},
      {model::Arch::ResNet50, "resnet50"},
      {model::Arch::Small, "small"},
  };
};

template <>
struct hcl::EnumNames<hcl::model::Stem> {
  static constexpr NamedValue<model::Stem> table[] = {
      {model::Stem::Cifar, "cifar", "3x3, no max-pool"},
      {model::Stem::ImageNet, "imagenet", "7x7 stride 2, max-pool"},
  };
};
