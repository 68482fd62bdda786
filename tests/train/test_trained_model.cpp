// Trained models from files (train/trained_model.h over persist/): an export for Python
// (persist/export.h) is a torch.load-able dict under torchvision's names with its JSON beside it,
// hcl-eval's loader reads it back to the same weights, the projection head only when asked for, the
// verification sample holds the model's features, and a failed export leaves no file behind; a
// checkpoint of another architecture is refused naming the difference.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/check.h"
#include "tests/support/mpi_world.h"
#include "persist/checkpoint.h"
#include "persist/export.h"
#include "tests/support/errors.h"
#include "train/trained_model.h"

namespace hcl::train {
namespace {

namespace fs = std::filesystem;
using persist::export_for_python;

class Export : public ::testing::Test {
 protected:
  void SetUp() override {
    HCL_ONLY_AT_RANKS(1);  // files of one process
    dir_ = fs::temp_directory_path() / ("hcl-test-export-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_.arch = model::Arch::Small;
    config_.dataset = data::DatasetKind::FashionMnist;
    config_.projection_dim = 16;
    config_.head_hidden = 32;
    torch::manual_seed(4);
    net_ = model::ContrastiveModel(config_.model_options());
    // Buffers away from their initial values, so that loading them is seen.
    net_->train();
    net_->forward(torch::randn({8, 1, 28, 28}));
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  c10::Dict<c10::IValue, c10::IValue> read_dict(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    return torch::pickle_load(bytes).toGenericDict();
  }

  fs::path dir_;
  TrainConfig config_;
  model::ContrastiveModel net_{nullptr};
};

TEST_F(Export, EncoderRoundTripAndFileLayout) {
  const fs::path path = dir_ / "encoder.pt";
  export_for_python(net_, export_description(config_), path.string(), /*with_head=*/false);
  EXPECT_TRUE(fs::is_regular_file(path));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  // The dict: exactly the encoder's parameters and buffers, by name.
  const auto dict = read_dict(path);
  size_t expected = 0;
  for (const auto& p : net_->encoder->named_parameters()) {
    ++expected;
    ASSERT_TRUE(dict.contains(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(dict.at(p.key()).toTensor(), p.value())) << p.key();
  }
  for (const auto& b : net_->encoder->named_buffers()) {
    ++expected;
    ASSERT_TRUE(dict.contains(b.key())) << b.key();
    EXPECT_TRUE(torch::equal(dict.at(b.key()).toTensor(), b.value())) << b.key();
  }
  EXPECT_EQ(dict.size(), expected);
  // The JSON beside it.
  const nlohmann::json meta = nlohmann::json::parse(std::ifstream(path.string() + ".json"));
  EXPECT_EQ(meta.at("arch"), "small");
  EXPECT_EQ(meta.at("stem"), "cifar");
  EXPECT_EQ(meta.at("in_channels"), 1);
  EXPECT_EQ(meta.at("image_size"), 28);
  EXPECT_EQ(meta.at("feature_dim"), net_->encoder->feature_dim());
  EXPECT_EQ(meta.at("with_head"), false);
  EXPECT_EQ(meta.at("config"), config_.to_json());
  // hcl-eval's loader: the same configuration and encoder weights in a fresh model.
  const TrainedModel loaded = load_trained_model(path.string());
  EXPECT_EQ(loaded.config.to_json(), config_.to_json());
  const auto original = net_->encoder->named_parameters();
  for (const auto& p : loaded.model->encoder->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), original[p.key()])) << p.key();
  const auto buffers = net_->encoder->named_buffers();
  for (const auto& b : loaded.model->encoder->named_buffers())
    EXPECT_TRUE(torch::equal(b.value(), buffers[b.key()])) << b.key();
}

TEST_F(Export, HeadOnlyWhenAskedFor) {
  const fs::path path = dir_ / "with-head.pt";
  export_for_python(net_, export_description(config_), path.string(), /*with_head=*/true);
  const auto dict = read_dict(path);
  int64_t head = 0;
  for (const auto& item : dict)
    if (item.key().toStringRef().rfind("head.", 0) == 0) ++head;
  EXPECT_EQ(head,
            static_cast<int64_t>(net_->head->named_parameters().size() + net_->head->named_buffers().size()));
  for (const auto& p : net_->head->named_parameters()) {
    const std::string key = "head." + p.key().substr(std::string("layers.").size());
    ASSERT_TRUE(dict.contains(key)) << key;
    EXPECT_TRUE(torch::equal(dict.at(key).toTensor(), p.value())) << key;
  }
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(path.string() + ".json")).at("with_head"), true);
}

TEST_F(Export, VerificationSampleHoldsTheModelsFeatures) {
  const fs::path path = dir_ / "sample.pt";
  persist::write_verification_sample(net_, config_.dataset, path.string());
  const auto dict = read_dict(path);
  const torch::Tensor input = dict.at("input").toTensor(), features = dict.at("features").toTensor();
  EXPECT_EQ(input.sizes(), (std::vector<int64_t>{4, 1, 28, 28}));
  torch::NoGradGuard no_grad;
  net_->eval();
  EXPECT_TRUE(torch::allclose(features, net_->features(input)));
}

TEST_F(Export, LoadingAMismatchedFileIsAnError) {
  const fs::path path = dir_ / "encoder.pt";
  export_for_python(net_, export_description(config_), path.string(), false);
  // The JSON claims another architecture: the weights do not fit it.
  nlohmann::json meta = nlohmann::json::parse(std::ifstream(path.string() + ".json"));
  meta["config"]["arch"] = "resnet18";
  std::ofstream(path.string() + ".json") << meta.dump();
  try {
    load_trained_model(path.string());
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string() + ": "), std::string::npos) << e.what();
  }
}

TEST_F(Export, ACheckpointOfAnotherArchitectureIsRefused) {
  const std::string file = (dir_ / "checkpoint.pt").string();
  persist::save_checkpoint(file, *net_, nullptr, {}, config_.to_json());
  EXPECT_EQ(load_checkpoint_model(file).config.to_json(), config_.to_json());
  TrainConfig other = config_;
  other.projection_dim = 64;
  EXPECT_ERROR(check_compatible(config_of(persist::read_checkpoint_header(file), file), other, file),
               "is incompatible: --projection-dim is 16 there but 64 here");
}

TEST_F(Export, FailedExportLeavesNoFile) {
  const fs::path path = dir_ / "no-such-folder" / "encoder.pt";
  EXPECT_THROW(export_for_python(net_, export_description(config_), path.string(), false), Error);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  EXPECT_FALSE(fs::exists(path.string() + ".json"));
}

}  // namespace
}  // namespace hcl::train
