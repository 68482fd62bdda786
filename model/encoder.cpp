// ResNet (torchvision layout and initialisation) and the small conv net.
#include "model/encoder.h"

#include "core/check.h"

namespace hcl::model {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

// Registers a normalisation layer under `name` and returns it for the member that calls it.
nn::AnyModule register_norm(nn::Module& owner, const std::string& name, nn::AnyModule norm) {
  owner.register_module(name, norm.ptr());
  return norm;
}

// torchvision's downsample: Sequential(1x1 conv with the stride, norm) named "0" and "1".
nn::Sequential downsample_path(int64_t in, int64_t out, int64_t stride, const NormFactory& norm) {
  nn::Sequential path;
  path->push_back(conv(in, out, 1, stride));
  path->push_back(norm.norm2d(out));
  return path;
}

// conv1-bn1-relu-conv2-bn2 (+ identity or downsample), then relu.
class BasicBlockImpl : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride, const NormFactory& norm)
      : conv1(register_module("conv1", conv(in, planes, 3, stride))),
        bn1(register_norm(*this, "bn1", norm.norm2d(planes))),
        conv2(register_module("conv2", conv(planes, planes, 3, 1))),
        bn2(register_norm(*this, "bn2", norm.norm2d(planes))) {
    if (stride != 1 || in != planes)
      downsample = register_module("downsample", downsample_path(in, planes, stride, norm));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1.forward(conv1(x)));
    out = bn2.forward(conv2(out));
    return torch::relu(out + (downsample ? downsample->forward(x) : x));
  }
  static constexpr const char* kLastNorm = "bn2";

 private:
  // Declared in registration order (torchvision's parameter order).
  nn::Conv2d conv1;
  nn::AnyModule bn1;
  nn::Conv2d conv2;
  nn::AnyModule bn2;
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

// 1x1 reduce, 3x3 (with the stride, as torchvision v1.5), 1x1 expand x4.
class BottleneckImpl : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride, const NormFactory& norm)
      : conv1(register_module("conv1", conv(in, planes, 1, 1))),
        bn1(register_norm(*this, "bn1", norm.norm2d(planes))),
        conv2(register_module("conv2", conv(planes, planes, 3, stride))),
        bn2(register_norm(*this, "bn2", norm.norm2d(planes))),
        conv3(register_module("conv3", conv(planes, planes * kExpansion, 1, 1))),
        bn3(register_norm(*this, "bn3", norm.norm2d(planes * kExpansion))) {
    if (stride != 1 || in != planes * kExpansion)
      downsample =
          register_module("downsample", downsample_path(in, planes * kExpansion, stride, norm));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1.forward(conv1(x)));
    out = torch::relu(bn2.forward(conv2(out)));
    out = bn3.forward(conv3(out));
    return torch::relu(out + (downsample ? downsample->forward(x) : x));
  }
  static constexpr const char* kLastNorm = "bn3";

 private:
  nn::Conv2d conv1;
  nn::AnyModule bn1;
  nn::Conv2d conv2;
  nn::AnyModule bn2;
  nn::Conv2d conv3;
  nn::AnyModule bn3;
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

}  // namespace

ResNetImpl::ResNetImpl(const std::vector<int64_t>& blocks_per_stage, bool bottleneck,
                       const EncoderOptions& options)
    : bottleneck_(bottleneck), imagenet_stem_(options.stem() == Stem::ImageNet) {
  conv1 = register_module("conv1", imagenet_stem_ ? conv(options.in_channels(), 64, 7, 2)
                                                  : conv(options.in_channels(), 64, 3, 1));
  bn1 = register_norm(*this, "bn1", options.norm().norm2d(64));
  layer1 = register_module("layer1", make_stage(64, blocks_per_stage[0], 1, options.norm()));
  layer2 = register_module("layer2", make_stage(128, blocks_per_stage[1], 2, options.norm()));
  layer3 = register_module("layer3", make_stage(256, blocks_per_stage[2], 2, options.norm()));
  layer4 = register_module("layer4", make_stage(512, blocks_per_stage[3], 2, options.norm()));
  feature_dim_ = 512 * (bottleneck_ ? BottleneckImpl::kExpansion : BasicBlockImpl::kExpansion);
  init_like_torchvision(*this);
  if (options.zero_init_residual()) {
    torch::NoGradGuard no_grad;
    const std::string last = std::string(bottleneck_ ? BottleneckImpl::kLastNorm : BasicBlockImpl::kLastNorm) + ".weight";
    for (auto* stage : {&layer1, &layer2, &layer3, &layer4})
      for (const auto& block : (*stage)->children()) block->named_parameters()[last].zero_();
  }
}

nn::Sequential ResNetImpl::make_stage(int64_t planes, int64_t blocks, int64_t stride,
                                      const NormFactory& norm) {
  nn::Sequential stage;
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t s = i == 0 ? stride : 1;
    if (bottleneck_) {
      stage->push_back(Bottleneck(in_planes_, planes, s, norm));
      in_planes_ = planes * BottleneckImpl::kExpansion;
    } else {
      stage->push_back(BasicBlock(in_planes_, planes, s, norm));
      in_planes_ = planes * BasicBlockImpl::kExpansion;
    }
  }
  return stage;
}

torch::Tensor ResNetImpl::forward(torch::Tensor x) {
  x = torch::relu(bn1.forward(conv1(x)));
  if (imagenet_stem_) x = torch::max_pool2d(x, 3, 2, 1);
  x = layer4->forward(layer3->forward(layer2->forward(layer1->forward(x))));
  return torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
}

SmallConvNetImpl::SmallConvNetImpl(const EncoderOptions& options) {
  body = register_module("body", nn::Sequential());
  int64_t in = options.in_channels();
  for (auto [out, stride] : {std::pair<int64_t, int64_t>{32, 1}, {64, 2}, {128, 2}}) {
    body->push_back(conv(in, out, 3, stride));
    body->push_back(options.norm().norm2d(out));
    body->push_back(nn::Functional(torch::relu));
    in = out;
  }
  init_like_torchvision(*this);
}

torch::Tensor SmallConvNetImpl::forward(torch::Tensor x) {
  return torch::adaptive_avg_pool2d(body->forward(x), {1, 1}).flatten(1);
}

std::shared_ptr<EncoderImpl> make_encoder(const EncoderOptions& options) {
  HCL_REQUIRE(options.in_channels() >= 1, "input channels must be >= 1, got ", options.in_channels());
  switch (options.arch()) {
    case Arch::ResNet18:
      return std::make_shared<ResNetImpl>(std::vector<int64_t>{2, 2, 2, 2}, false, options);
    case Arch::ResNet34:
      return std::make_shared<ResNetImpl>(std::vector<int64_t>{3, 4, 6, 3}, false, options);
    case Arch::ResNet50: return std::make_shared<ResNetImpl>(std::vector<int64_t>{3, 4, 6, 3}, true, options);
    case Arch::Small: return std::make_shared<SmallConvNetImpl>(options);
  }
  HCL_ASSERT(false, "arch ", static_cast<int>(options.arch()), " not handled");
  return nullptr;
}

void init_like_torchvision(nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* c = m->as<nn::Conv2dImpl>()) {
      nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      continue;
    }
    // Normalisation layers of any kind (BatchNorm, SyncBatchNorm): they own running statistics.
    auto params = m->named_parameters(/*recurse=*/false);
    if (m->named_buffers(/*recurse=*/false).contains("running_mean") && params.contains("weight")) {
      nn::init::ones_(params["weight"]);
      nn::init::zeros_(params["bias"]);
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
