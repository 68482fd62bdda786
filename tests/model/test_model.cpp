// Tests of model/: parameter counts equal torchvision's, torchvision's names, output shapes, unit
// projections, train/eval behaviour of BatchNorm.
#include <gtest/gtest.h>

#include "core/check.h"
#include "model/contrastive_model.h"
#include "model/macs.h"

namespace hcl::model {
namespace {

int64_t count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

EncoderOptions resnet(const std::string& arch, int64_t channels = 3) {
  return EncoderOptions().arch(parse<Arch>("arch", arch)).in_channels(channels);
}

TEST(Model, ParameterCountsEqualTorchvision) {
  EXPECT_EQ(count(*make_encoder(resnet("resnet18"))), 11168832);
  EXPECT_EQ(count(*make_encoder(resnet("resnet34"))), 21276992);
  EXPECT_EQ(count(*make_encoder(resnet("resnet50"))), 23500352);
  EXPECT_EQ(count(*make_encoder(resnet("resnet18", 1))), 11167680);
  EXPECT_EQ(count(*ProjectionHead(ProjectionHeadOptions().in_features(512))), 328832);
  EXPECT_EQ(count(*ProjectionHead(ProjectionHeadOptions().in_features(2048))), 1115264);
}

// The figures for a 32x32 view with the CIFAR stem: ResNet-18 0.555 GMAC, ResNet-50 1.298.
TEST(Model, CountedMultiplyAddsMatchTheKnownFigures) {
  torch::NoGradGuard no_grad;
  const torch::Tensor image = torch::randn({2, 3, 32, 32});
  for (const auto& [arch, gmac] : {std::pair<std::string, double>{"resnet18", 0.555}, {"resnet50", 1.298}}) {
    auto encoder = make_encoder(resnet(arch));
    encoder->eval();
    const double per_image = count_macs([&] { encoder->forward(image); }) / 2.0 / 1e9;
    EXPECT_NEAR(per_image, gmac, 0.005 * gmac) << arch;
  }
  // A matrix product and a convolution with stride, padding and groups, counted exactly.
  EXPECT_EQ(count_macs([] { torch::mm(torch::ones({3, 4}), torch::ones({4, 5})); }), 3 * 4 * 5);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(4, 6, 3).stride(2).padding(1).groups(2));
  // 9x9 input -> 5x5 output; each output sums 2 input channels x 3 x 3.
  EXPECT_EQ(count_macs([&] { conv->forward(torch::ones({1, 4, 9, 9})); }), 5 * 5 * 6 * 2 * 9);
  EXPECT_EQ(count_macs([] { torch::relu(torch::ones({10})); }), 0);
}

TEST(Model, NamesFollowTorchvision) {
  const auto r18 = make_encoder(resnet("resnet18"))->named_parameters();
  for (const char* name : {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
                           "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight",
                           "layer4.1.conv2.weight"})
    EXPECT_TRUE(r18.contains(name)) << name;
  EXPECT_FALSE(r18.contains("layer1.0.downsample.0.weight"));
  const auto buffers = make_encoder(resnet("resnet18"))->named_buffers();
  EXPECT_TRUE(buffers.contains("bn1.running_mean"));
  EXPECT_TRUE(buffers.contains("layer3.0.downsample.1.running_var"));
  const auto r50 = make_encoder(resnet("resnet50"))->named_parameters();
  for (const char* name : {"layer1.0.conv3.weight", "layer1.0.bn3.weight", "layer1.0.downsample.0.weight",
                           "layer4.2.conv2.weight"})
    EXPECT_TRUE(r50.contains(name)) << name;
}

TEST(Model, InitialisationFollowsTorchvision) {
  const auto encoder = make_encoder(resnet("resnet18"));
  const auto params = encoder->named_parameters();
  // Kaiming normal, fan_out, relu: std = sqrt(2 / (out_channels * k * k)).
  const torch::Tensor w = params["layer3.0.conv2.weight"];
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / (256 * 9)), 0.002);
  EXPECT_TRUE(torch::equal(params["bn1.weight"], torch::ones(64)));
  EXPECT_TRUE(torch::equal(params["bn1.bias"], torch::zeros(64)));
  const auto zero_init = make_encoder(resnet("resnet18").zero_init_residual(true))->named_parameters();
  EXPECT_TRUE(torch::equal(zero_init["layer1.0.bn2.weight"], torch::zeros(64)));
  EXPECT_TRUE(torch::equal(zero_init["layer1.0.bn1.weight"], torch::ones(64)));
  const auto neck = make_encoder(resnet("resnet50").zero_init_residual(true))->named_parameters();
  EXPECT_TRUE(torch::equal(neck["layer2.1.bn3.weight"], torch::zeros(512)));
}

TEST(Model, OutputShapesAndUnitProjections) {
  struct Case {
    std::string arch;
    Stem stem;
    int64_t channels, size, features;
  };
  for (const Case& c : {Case{"resnet18", Stem::Cifar, 1, 28, 512}, Case{"resnet18", Stem::Cifar, 3, 32, 512},
                        Case{"resnet18", Stem::ImageNet, 3, 96, 512}, Case{"resnet50", Stem::Cifar, 3, 32, 2048},
                        Case{"resnet34", Stem::ImageNet, 3, 96, 512}, Case{"small", Stem::Cifar, 1, 28, 128},
                        Case{"small", Stem::Cifar, 3, 96, 128}}) {
    SCOPED_TRACE(c.arch + " " + std::to_string(c.channels) + "x" + std::to_string(c.size));
    ContrastiveModel m(ModelOptions().encoder(resnet(c.arch, c.channels).stem(c.stem)));
    const ModelOutput out = m->forward(torch::randn({3, c.channels, c.size, c.size}));
    EXPECT_EQ(out.features.sizes(), (std::vector<int64_t>{3, c.features}));
    EXPECT_EQ(out.projection.sizes(), (std::vector<int64_t>{3, 128}));
    EXPECT_TRUE(torch::allclose(out.projection.norm(2, 1), torch::ones(3), 1e-5, 1e-6));
  }
}

TEST(Model, TrainAndEvalForwardBackwardAndBatchNormStatistics) {
  ContrastiveModel m(ModelOptions().encoder(EncoderOptions().arch(Arch::Small).in_channels(1)));
  const auto running = [&] { return m->named_buffers()["encoder.body.1.running_mean"].clone(); };
  const torch::Tensor images = torch::randn({4, 1, 28, 28}) + 3.0;

  m->train();
  const torch::Tensor before = running();
  ModelOutput out = m->forward(images);
  out.projection.sum().backward();
  EXPECT_FALSE(torch::equal(before, running())) << "train mode must update running statistics";
  for (const auto& p : m->parameters()) ASSERT_TRUE(p.grad().defined());

  m->eval();
  const torch::Tensor frozen = running();
  out = m->forward(images);
  out.projection.sum().backward();
  EXPECT_TRUE(torch::equal(frozen, running())) << "eval mode must not move running statistics";
  // Eval is deterministic per sample: a batch of one gives the same row as in the batch.
  const torch::Tensor single = m->forward(images.narrow(0, 1, 1)).features;
  EXPECT_TRUE(torch::allclose(single, out.features.narrow(0, 1, 1), 1e-5, 1e-5));
}

TEST(Model, ChannelsLastKeepsResults) {
  ContrastiveModel m(ModelOptions().encoder(EncoderOptions().arch(Arch::ResNet18)));
  m->eval();
  const torch::Tensor images = torch::randn({2, 3, 32, 32});
  const torch::Tensor expected = m->forward(images).features;
  to_channels_last(*m);
  EXPECT_TRUE(m->named_parameters()["encoder.conv1.weight"].is_contiguous(torch::MemoryFormat::ChannelsLast));
  const torch::Tensor got = m->forward(images.contiguous(torch::MemoryFormat::ChannelsLast)).features;
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-5));
}

TEST(Model, BadOptionsGiveClearErrors) {
  EXPECT_THROW(parse<Arch>("arch", "vgg16"), Error);
  EXPECT_THROW(make_encoder(EncoderOptions().in_channels(0)), Error);
  EXPECT_THROW(parse<Stem>("stem", "tiny"), Error);
  EXPECT_THROW(ProjectionHead(ProjectionHeadOptions().out(0)), Error);
}

}  // namespace
}  // namespace hcl::model
