// hcl-train's options: Boost.Program_options over TrainConfig::visit_fields.
#include "launch/options.h"

#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/check.h"
#include "core/enum_option.h"

namespace hcl::launch {
namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace {

template <typename T>
std::string text_of(const T& value) {
  std::ostringstream out;
  out << std::boolalpha << value;
  return out.str();
}

po::options_description describe(train::TrainConfig& config) {
  po::options_description desc("hcl-train options (also accepted as 'name = value' lines in --config files)");
  desc.add_options()("help,h", "print this help and exit")("config", po::value<std::string>(),
                                                           "config file of 'name = value' lines");
  train::TrainConfig::visit_fields(config, [&](const char* name, auto& field, const char* help) {
    using T = std::decay_t<decltype(field)>;
    if constexpr (is_named_enum_v<T>) {
      desc.add_options()(name, enum_option(&field, name), help_with_choices<T>(help).c_str());
    } else {
      auto* value = po::value<T>(&field)->default_value(field, text_of(field));
      if constexpr (std::is_same_v<T, bool>) value->implicit_value(true, "true");
      desc.add_options()(name, value, help);
    }
  });
  return desc;
}

}  // namespace

ParsedOptions parse_train_options(int argc, char** argv) {
  ParsedOptions parsed;
  po::options_description desc = describe(parsed.config);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("config")) {
      const std::string file = vm["config"].as<std::string>();
      std::ifstream in(file);
      HCL_REQUIRE(in.good(), "--config: cannot read '", file, "'");
      po::store(po::parse_config_file(in, desc, /*allow_unregistered=*/false), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(e.what());
  }
  if (vm.count("help")) {
    std::ostringstream text;
    text << "usage: mpirun -np W hcl-train [options]\n\n" << desc;
    parsed.help = true;
    parsed.help_text = text.str();
    return parsed;
  }
  parsed.config.validate();
  return parsed;
}

namespace {
// Whether this process can create entries in `folder`: a probe folder made and removed at once
// (permission bits alone say nothing for root, or on a read-only or full file system).
bool can_create_in(const fs::path& folder) {
  std::string probe = (folder / ".hcl-probe-XXXXXX").string();
  if (::mkdtemp(probe.data()) == nullptr) return false;
  ::rmdir(probe.c_str());
  return true;
}
}  // namespace

std::string check_output_folder(const train::TrainConfig& config) {
  if (!config.resume.empty() && !fs::is_regular_file(config.resume))
    return "--resume: no such checkpoint file '" + config.resume + "'";
  const fs::path out(config.out);
  std::error_code ec;
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out)) return "--out: '" + config.out + "' exists and is not a folder";
    if (!can_create_in(out)) return "--out: folder '" + config.out + "' is not writable";
    const bool holds_run = fs::exists(out / "config.json") || fs::exists(out / "metrics.jsonl") ||
                           fs::exists(out / "checkpoint.pt");
    if (holds_run && config.resume.empty() && !config.force)
      return "--out: folder '" + config.out +
             "' holds another run (continue it with --resume, or overwrite it with --force)";
    return "";
  }
  // The nearest existing ancestor must let us create the folder.
  fs::path parent = fs::absolute(out).parent_path();
  while (!parent.empty() && !fs::exists(parent, ec)) parent = parent.parent_path();
  if (parent.empty()) return "--out: cannot create '" + config.out + "' (no existing parent)";
  if (!fs::is_directory(parent)) return "--out: cannot create '" + config.out + "' ('" + parent.string() + "' is not a folder)";
  if (!can_create_in(parent))
    return "--out: cannot create '" + config.out + "' ('" + parent.string() + "' is not writable)";
  return "";
}

void prepare_output_folder(const train::TrainConfig& config) {
  const fs::path out(config.out);
  fs::create_directories(out);
  if (config.force && config.resume.empty()) fs::remove(out / "metrics.jsonl");
}

}  // namespace hcl::launch
