// hcl-train's options: Boost.Program_options over TrainConfig::visit_fields.
#include "launch/options.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/enum_option.h"
#include "core/stop_signal.h"

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
  desc.add_options()("help,h", "print this help and exit")(
      "version", "print the versions of hcl, LibTorch, MPI and NCCL and exit")(
      "config", po::value<std::string>(), "config file of 'name = value' lines");
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

// The options of a --config file. A folder, an unreadable file, and a `config =` line (config
// files do not include others) are errors naming the file.
po::parsed_options read_config_file(const std::string& file, const po::options_description& desc) {
  std::error_code ec;
  HCL_REQUIRE(!fs::is_directory(file, ec), "--config: '", file, "' is a folder, not a config file");
  std::ifstream in(file);
  HCL_REQUIRE(in.good(), "--config: cannot read '", file, "'");
  po::parsed_options parsed = po::parse_config_file(in, desc, /*allow_unregistered=*/false);
  HCL_REQUIRE(!in.bad(), "--config: cannot read '", file, "'");
  for (const po::option& option : parsed.options)
    HCL_REQUIRE(option.string_key != "config", "--config: '", file,
                "' sets 'config'; a config file cannot name another (give one --config on the command line)");
  for (const po::option& option : parsed.options)
    HCL_REQUIRE(option.string_key != "help" && option.string_key != "version", "--config: '", file, "' sets '",
                option.string_key, "'; give --", option.string_key, " on the command line");
  return parsed;
}

// A path as a shell would have given it: "~" and "~/..." under $HOME (config files are not
// expanded by any shell; a folder named "~" is never what was meant).
std::string expand_home(const std::string& path) {
  if (path != "~" && path.rfind("~/", 0) != 0) return path;
  const char* home = std::getenv("HOME");
  HCL_REQUIRE(home != nullptr && *home != '\0', "'", path, "': cannot expand '~' (HOME is not set); give the full path");
  return std::string(home) + path.substr(1);
}

// A --data-dir as a run stores it: absolute, so that config.json and the checkpoint name the data
// wherever hcl-eval is run from later ("" stays: the dataset's default folder).
std::string stored_data_dir(const std::string& dir) {
  return dir.empty() ? dir : fs::absolute(dir).lexically_normal().string();
}

// The paths of a run as it stores them: '~' expanded, --data-dir absolute.
void settle_paths(train::TrainConfig& c) {
  c.out = expand_home(c.out);
  c.resume = expand_home(c.resume);
  c.data_dir = stored_data_dir(expand_home(c.data_dir));
}

}  // namespace

ParsedOptions parse_train_options(int argc, char** argv, int world) {
  ParsedOptions parsed;
  po::options_description desc = describe(parsed.config);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("config")) po::store(read_config_file(vm["config"].as<std::string>(), desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(e.what());
  }
  if (vm.count("help")) {
    std::ostringstream text;
    text << "usage: mpirun -np W hcl-train [options]\n\n"
         << "Signals: SIGTERM, SIGUSR1 or SIGINT ask for a stop: every rank finishes its step, a checkpoint\n"
         << "is written to --out and the run exits 3 (continue with --resume auto). While stopping, a second\n"
         << "SIGINT ends the process at once; a second SIGTERM does so only " << stop::kTermRepeatSeconds
         << " s or more after the first\n(Slurm sends SIGTERM, SIGCONT, SIGTERM within milliseconds: one stop).\n\n"
         << desc;
    parsed.help = true;
    parsed.help_text = text.str();
    return parsed;
  }
  settle_paths(parsed.config);
  parsed.config.resolve_batch(world, vm.count("batch-size") > 0 && !vm["batch-size"].defaulted());
  parsed.config.validate();
  parsed.config.check_environment();
  if (parsed.config.resume == "auto") {  // the --out folder's checkpoint when there is one
    parsed.resume_auto = true;
    const fs::path checkpoint = fs::path(parsed.config.out) / "checkpoint.pt";
    parsed.config.resume = fs::is_regular_file(checkpoint) ? checkpoint.string() : "";
  }
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

namespace {
// Whether `out`'s config.json describes the same run as `config` (every option but those that may
// differ between attempts of one run).
bool same_run(const fs::path& out, const train::TrainConfig& config) {
  std::ifstream in(out / "config.json");
  nlohmann::json theirs = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (theirs.is_discarded() || !theirs.is_object()) return false;
  nlohmann::json ours = config.to_json();
  if (!theirs.contains("global-batch")) ours.erase("global-batch");  // written before hcl recorded it
  theirs.erase("run-id");  // the run's id, not an option
  if (theirs.contains("data-dir") && theirs["data-dir"].is_string())  // relative where written before hcl stored it so
    theirs["data-dir"] = stored_data_dir(theirs["data-dir"].get<std::string>());
  for (const char* key : {"resume", "force", "log-level", "log-file"}) {
    theirs.erase(key);
    ours.erase(key);
  }
  return theirs == ours;
}

// The job's lock on its output folder: <out>/.hcl.lock, flock'ed by rank 0 and held until the
// process ends (the kernel releases it on any exit, SIGKILL included). "" when held, else the error.
std::string lock_output_folder(const fs::path& out) {
  static int held = -1;
  if (held >= 0) return "";
  const fs::path lock = out / ".hcl.lock";
  const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return "--out: cannot create the lock file '" + lock.string() + "': " + std::strerror(errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return "--out: folder '" + out.string() + "' is in use by another running job (it holds the lock '" +
           lock.string() + "')";
  }
  held = fd;
  return "";
}

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::equivalent(a, b, ec);
}
}  // namespace

std::string check_output_folder(const train::TrainConfig& config, bool resume_auto) {
  if (!config.resume.empty() && !fs::is_regular_file(config.resume))
    return "--resume: no such checkpoint file '" + config.resume + "'";
  const fs::path out(config.out);
  std::error_code ec;
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out)) return "--out: '" + config.out + "' exists and is not a folder";
    if (!can_create_in(out)) return "--out: folder '" + config.out + "' is not writable";
    // Another job running in this folder is refused even with --force: it would write over it.
    if (std::string locked = lock_output_folder(out); !locked.empty()) return locked;
    const bool holds_run = fs::exists(out / "config.json") || fs::exists(out / "metrics.jsonl") ||
                           fs::exists(out / "checkpoint.pt");
    if (!holds_run || config.force) return "";
    if (config.resume.empty() && !(resume_auto && !fs::exists(out / "checkpoint.pt") && same_run(out, config)))
      return "--out: folder '" + config.out +
             "' holds another run (continue it with --resume auto, or overwrite it with --force)";
    if (!config.resume.empty() && !same_folder(fs::path(config.resume).parent_path(), out))
      return "--out: folder '" + config.out + "' holds another run than the one in '" + config.resume +
             "' (resume into the checkpoint's own folder, a new folder, or overwrite with --force)";
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

void prepare_output_folder(const train::TrainConfig& config, bool resume_auto) {
  const fs::path out(config.out);
  fs::create_directories(out);
  if (std::string locked = lock_output_folder(out); !locked.empty()) throw InputError(locked);
  if ((config.force || resume_auto) && config.resume.empty()) fs::remove(out / "metrics.jsonl");
  // Starting afresh over another run (--force): nothing of it stays that a later --resume auto
  // (a requeued job) would take for this run's own checkpoint.
  if (config.force && config.resume.empty())
    for (const char* name : {"checkpoint.pt", "checkpoint.pt.tmp", "config.json"}) fs::remove(out / name);
}

}  // namespace hcl::launch
