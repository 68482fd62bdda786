// ResNet (torchvision layout and initialisation) and the small conv net.
#include "model/encoder.h"

#include "core/check.h"

namespace hcl::model {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

// conv1-bn1-relu-conv2-bn2 (+ identity or downsample), then relu.
class BasicBlockImpl : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride)
      : conv1(register_module("conv1", conv(in, planes, 3, stride))),
        bn1(register_module("bn1", nn::BatchNorm2d(planes))),
        conv2(register_module("conv2", conv(planes, planes, 3, 1))),
        bn2(register_module("bn2", nn::BatchNorm2d(planes))) {
    if (stride != 1 || in != planes)
      downsample = register_module(
          "downsample", nn::Sequential(conv(in, planes, 1, stride), nn::BatchNorm2d(planes)));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1(conv1(x)));
    out = bn2(conv2(out));
    return torch::relu(out + (downsample ? downsample->forward(x) : x));
  }
  nn::BatchNorm2d& last_bn() { return bn2; }

  // Declared in registration order (torchvision's parameter order).
  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::BatchNorm2d bn2;
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

// 1x1 reduce, 3x3 (with the stride, as torchvision v1.5), 1x1 expand x4.
class BottleneckImpl : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride)
      : conv1(register_module("conv1", conv(in, planes, 1, 1))),
        bn1(register_module("bn1", nn::BatchNorm2d(planes))),
        conv2(register_module("conv2", conv(planes, planes, 3, stride))),
        bn2(register_module("bn2", nn::BatchNorm2d(planes))),
        conv3(register_module("conv3", conv(planes, planes * kExpansion, 1, 1))),
        bn3(register_module("bn3", nn::BatchNorm2d(planes * kExpansion))) {
    if (stride != 1 || in != planes * kExpansion)
      downsample = register_module("downsample",
                                   nn::Sequential(conv(in, planes * kExpansion, 1, stride),
                                                  nn::BatchNorm2d(planes * kExpansion)));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1(conv1(x)));
    out = torch::relu(bn2(conv2(out)));
    out = bn3(conv3(out));
    return torch::relu(out + (downsample ? downsample->forward(x) : x));
  }
  nn::BatchNorm2d& last_bn() { return bn3; }

  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::BatchNorm2d bn2;
  nn::Conv2d conv3;
  nn::BatchNorm2d bn3;
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

}  // namespace

Stem parse_stem(const std::string& name) {
  if (name == "cifar") return Stem::Cifar;
  if (name == "imagenet") return Stem::ImageNet;
  throw Error("unknown stem '" + name + "' (expected cifar or imagenet)");
}

ResNetImpl::ResNetImpl(const std::vector<int64_t>& blocks_per_stage, bool bottleneck,
                       const EncoderOptions& options)
    : bottleneck_(bottleneck), imagenet_stem_(options.stem() == Stem::ImageNet) {
  conv1 = register_module("conv1", imagenet_stem_ ? conv(options.in_channels(), 64, 7, 2)
                                                  : conv(options.in_channels(), 64, 3, 1));
  bn1 = register_module("bn1", nn::BatchNorm2d(64));
  layer1 = register_module("layer1", make_stage(64, blocks_per_stage[0], 1));
  layer2 = register_module("layer2", make_stage(128, blocks_per_stage[1], 2));
  layer3 = register_module("layer3", make_stage(256, blocks_per_stage[2], 2));
  layer4 = register_module("layer4", make_stage(512, blocks_per_stage[3], 2));
  feature_dim_ = 512 * (bottleneck_ ? BottleneckImpl::kExpansion : BasicBlockImpl::kExpansion);
  init_like_torchvision(*this);
  if (options.zero_init_residual()) {
    torch::NoGradGuard no_grad;
    for (auto* stage : {&layer1, &layer2, &layer3, &layer4})
      for (const auto& block : (*stage)->children()) {
        if (auto* basic = block->as<BasicBlockImpl>()) basic->last_bn()->weight.zero_();
        if (auto* neck = block->as<BottleneckImpl>()) neck->last_bn()->weight.zero_();
      }
  }
}

nn::Sequential ResNetImpl::make_stage(int64_t planes, int64_t blocks, int64_t stride) {
  nn::Sequential stage;
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t s = i == 0 ? stride : 1;
    if (bottleneck_) {
      stage->push_back(Bottleneck(in_planes_, planes, s));
      in_planes_ = planes * BottleneckImpl::kExpansion;
    } else {
      stage->push_back(BasicBlock(in_planes_, planes, s));
      in_planes_ = planes * BasicBlockImpl::kExpansion;
    }
  }
  return stage;
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) {
  x = torch::relu(bn1(conv1(x)));
  if (imagenet_stem_) x = torch::max_pool2d(x, 3, 2, 1);
  x = layer4->forward(layer3->forward(layer2->forward(layer1->forward(x))));
  return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
}

SmallConvNetImpl::SmallConvNetImpl(const EncoderOptions& options) {
  body = register_module(
      "body", nn::Sequential(conv(options.in_channels(), 32, 3, 1), nn::BatchNorm2d(32),
                             nn::Functional(torch::relu), conv(32, 64, 3, 2), nn::BatchNorm2d(64),
                             nn::Functional(torch::relu), conv(64, 128, 3, 2),
                             nn::BatchNorm2d(128), nn::Functional(torch::relu)));
  init_like_torchvision(*this);
}

torch::Tensor SmallConvNetImpl::forward(torch::Tensor x) {
  return torch::adaptive_avg_pool2d(body->forward(x), {1, 1}).flatten(1);
}

std::shared_ptr<EncoderImpl> make_encoder(const EncoderOptions& options) {
  HCL_REQUIRE(options.in_channels() >= 1, "input channels must be >= 1, got ", options.in_channels());
  const std::string& arch = options.arch();
  if (arch == "resnet18") return std::make_shared<ResNetImpl>(std::vector<int64_t>{2, 2, 2, 2}, false, options);
  if (arch == "resnet34") return std::make_shared<ResNetImpl>(std::vector<int64_t>{3, 4, 6, 3}, false, options);
  if (arch == "resnet50") return std::make_shared<ResNetImpl>(std::vector<int64_t>{3, 4, 6, 3}, true, options);
  if (arch == "small") return std::make_shared<SmallConvNetImpl>(options);
  throw Error("unknown arch '" + arch + "' (expected resnet18, resnet34, resnet50 or small)");
}

void init_like_torchvision(nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* c = m->as<nn::Conv2dImpl>()) {
      nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = m->as<nn::BatchNorm2dImpl>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    } else if (auto* bn1d = m->as<nn::BatchNorm1dImpl>()) {
      nn::init::ones_(bn1d->weight);
      nn::init::zeros_(bn1d->bias);
    }
  }
}

void to_channels_last(nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
  for (auto& b : module.buffers())
    if (b.dim() == 4) b.set_data(b.contiguous(torch::MemoryFormat::ChannelsLast));
}

}  // namespace hcl::model
