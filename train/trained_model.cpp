// Checkpoints and exported files as typed configurations and built models.
#include "train/trained_model.h"

#include "core/check.h"

namespace hcl::train {

TrainConfig config_of(const persist::Checkpoint& checkpoint, const std::string& path) {
  try {
    return TrainConfig::from_json(checkpoint.config);
  } catch (const Error& e) {
    throw Error("checkpoint " + path + ": " + e.what());
  } catch (const std::exception& e) {  // JSON of another shape: not what hcl-train writes
    const std::string what = e.what();
    throw Error("checkpoint " + path + ": its configuration is not hcl-train's (" +
                what.substr(0, what.find('\n')) + ")");
  }
}

void check_compatible(const TrainConfig& theirs, const TrainConfig& expected, const std::string& path) {
  const nlohmann::json have = theirs.model_identity(), want = expected.model_identity();
  for (const auto& item : want.items())
    HCL_REQUIRE(have.at(item.key()) == item.value(), "checkpoint ", path, " is incompatible: --",
                item.key(), " is ", have.at(item.key()).dump(), " there but ", item.value().dump(), " here");
}

persist::ExportDescription export_description(const TrainConfig& config) {
  return {config.arch, config.stem, config.dataset, config.to_json()};
}

TrainedModel load_checkpoint_model(const std::string& path) {
  const TrainConfig config = config_of(persist::read_checkpoint_header(path), path);
  model::ContrastiveModel net(config.model_options());
  persist::load_checkpoint(path, *net, nullptr);  // the model is built from its own configuration
  return {config, net};
}

TrainedModel load_trained_model(const std::string& path) {
  if (!persist::is_export(path)) return load_checkpoint_model(path);
  try {
    const TrainConfig config = TrainConfig::from_json(persist::read_export_config(path));
    model::ContrastiveModel net(config.model_options());
    persist::load_exported_encoder(path, net);
    return {config, net};
  } catch (const Error&) {
    throw;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ".json: not the description hcl-export writes beside its files (" + e.what() + ")");
  } catch (const std::exception& e) {  // LibTorch's unpickler: a truncated or foreign file
    const std::string what = e.what();
    throw Error(path + ": not a checkpoint of hcl-train nor a complete file of hcl-export (" +
                what.substr(0, what.find('\n')) + ")");
  }
}

}  // namespace hcl::train
