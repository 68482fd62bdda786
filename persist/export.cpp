// Export to and import from torch.load-able state dicts.
#include "persist/export.h"

#include <cerrno>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/check.h"
#include "persist/checkpoint.h"

namespace hcl::persist {
namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  HCL_REQUIRE(in.good(), path, ": cannot read");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string_view as_bytes(const std::vector<char>& bytes) { return {bytes.data(), bytes.size()}; }

// "layers.3.weight" (our head) <-> "head.3.weight" (the export).
std::string exported_head_key(const std::string& key) { return "head." + key.substr(std::strlen("layers.")); }

// How Python builds the encoder that `arch` and `stem` name (what python/hcl_weights.py does).
std::string encoder_recipe(model::Arch arch, model::Stem stem) {
  if (arch == model::Arch::Small) return "hcl_weights.SmallConvNet(in_channels) (model/encoder.cpp's small conv net)";
  const std::string resnet = "torchvision.models." + std::string(name_of(arch)) + "(); fc = Identity(); ";
  return resnet + (stem == model::Stem::Cifar
                       ? "conv1 = Conv2d(in_channels, 64, 3, 1, 1, bias=False); maxpool = Identity()"
                       : "conv1 = Conv2d(in_channels, 64, 7, 2, 3, bias=False)");
}

}  // namespace

bool is_export(const std::string& path) {
  return std::filesystem::is_regular_file(path + ".json") && !has_checkpoint_magic(path);
}

nlohmann::json read_export_config(const std::string& path) {
  return nlohmann::json::parse(read_bytes(path + ".json")).at("config");
}

void load_exported_encoder(const std::string& path, model::ContrastiveModel& model) {
  const std::string bytes = read_bytes(path);
  const c10::IValue value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  HCL_REQUIRE(value.isGenericDict(), path, ": not a state_dict");
  const auto dict = value.toGenericDict();
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& key, torch::Tensor& target) {
    HCL_REQUIRE(dict.contains(key) && dict.at(key).isTensor(), path, ": missing ", key);
    const torch::Tensor t = dict.at(key).toTensor();
    HCL_REQUIRE(t.sizes() == target.sizes(), path, ": ", key, " has shape ", t.sizes(), ", the model ",
                target.sizes());
    target.copy_(t);
  };
  for (auto& p : model->encoder->named_parameters()) load(p.key(), p.value());
  for (auto& b : model->encoder->named_buffers()) load(b.key(), b.value());
}

void export_for_python(model::ContrastiveModel& model, const ExportDescription& description,
                       const std::string& path, bool with_head) {
  c10::Dict<std::string, torch::Tensor> state;
  for (const auto& p : model->encoder->named_parameters()) state.insert(p.key(), p.value().detach().cpu());
  for (const auto& b : model->encoder->named_buffers()) state.insert(b.key(), b.value().cpu());
  if (with_head) {
    for (const auto& p : model->head->named_parameters()) state.insert(exported_head_key(p.key()), p.value().detach().cpu());
    for (const auto& b : model->head->named_buffers()) state.insert(exported_head_key(b.key()), b.value().cpu());
  }
  write_file_atomically(path, as_bytes(torch::pickle_save(c10::IValue(state))));
  const data::DatasetInfo& shape = data::dataset_info(description.dataset);
  const nlohmann::json meta = {
      {"format", "state_dict for torch.load: python/hcl_weights.py load_encoder(path) builds the encoder "
                 "this file names (arch, stem, in_channels) and loads it strictly"},
      {"arch", name_of(description.arch)},
      {"stem", name_of(description.stem)},
      {"in_channels", shape.channels},
      {"image_size", shape.size},
      {"feature_dim", model->encoder->feature_dim()},
      {"with_head", with_head},
      {"encoder", encoder_recipe(description.arch, description.stem)},
      {"config", description.config}};
  const std::string text = meta.dump(2) + "\n";
  write_file_atomically(path + ".json", text);
}

void write_verification_sample(model::ContrastiveModel& model, data::DatasetKind dataset,
                               const std::string& path) {
  const data::DatasetInfo& shape = data::dataset_info(dataset);
  torch::manual_seed(0);
  const torch::Tensor input = torch::randn({4, shape.channels, shape.size, shape.size});
  torch::NoGradGuard no_grad;
  model->eval();
  const torch::Tensor features = model->features(input);
  c10::Dict<std::string, torch::Tensor> sample;
  sample.insert("input", input);
  sample.insert("features", features);
  write_file_atomically(path, as_bytes(torch::pickle_save(c10::IValue(sample))));
}

}  // namespace hcl::persist
