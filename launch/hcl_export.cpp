// hcl-export: a trained encoder (and optionally the projection head) as a file that Python's
// torch.load reads into a plain state_dict with torchvision's keys and shapes (conv1.weight,
// bn1.running_mean, layer1.0.conv1.weight, ...), plus a JSON file beside it with the configuration
// the run was trained with.
//   hcl-export --checkpoint runs/x/checkpoint.pt --out resnet18.pt [--with-head]
//              [--verification-sample sample.pt]
// The verification sample holds an input batch and the encoder's features for it, so a Python
// user (and our tests) can check that the weights load and compute the same function.
// A one-process tool: it does not start MPI (errors: exit 2 for bad options, 1 otherwise).
#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/check.h"
#include "core/paths.h"
#include "core/run_guarded.h"
#include "dist/version.h"
#include "persist/export.h"
#include "train/trained_model.h"

namespace po = boost::program_options;

namespace {

int export_model(int argc, char** argv) {
  std::string checkpoint, out, sample;
  bool with_head = false;
  po::options_description desc("hcl-export options");
  desc.add_options()("help,h", "print this help and exit")(
      "version", "print the versions of hcl, LibTorch, MPI and NCCL and exit")(
      "checkpoint", po::value(&checkpoint)->required(), "checkpoint of hcl-train")(
      "out", po::value(&out)->required(), "output file (torch.load reads it; metadata in <out>.json)")(
      "with-head", po::bool_switch(&with_head), "also export the projection head (keys head.*)")(
      "verification-sample", po::value(&sample), "also write an input batch and its features here");
  const bool help = hcl::as_input([&] {  // po::error or hcl::Error: bad options, exit 2
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) return true;
    po::notify(vm);
    for (const auto& [option, path] : {std::pair{"--checkpoint", checkpoint}, {"--out", out}, {"--verification-sample", sample}})
      hcl::require_usable_path(option, path);
    HCL_REQUIRE(std::filesystem::is_regular_file(checkpoint), "--checkpoint: no such file '", checkpoint, "'");
    // What it writes: files, never its own input nor a folder.
    for (const auto& [option, path] : {std::pair{"--out", out}, {"--out", out + ".json"}, {"--verification-sample", sample}}) {
      if (path.empty()) continue;
      std::error_code ec;
      HCL_REQUIRE(!std::filesystem::equivalent(path, checkpoint, ec), option, ": '", path,
                  "' is the --checkpoint being exported; choose another file");
      HCL_REQUIRE(!std::filesystem::is_directory(path), option, ": '", path, "' is a folder; give a file name");
    }
    const std::filesystem::path folder = std::filesystem::absolute(out).parent_path();
    HCL_REQUIRE(std::filesystem::is_directory(folder), "--out: folder '", folder.string(), "' does not exist");
    return false;
  });
  if (help) {
    std::cout << "usage: hcl-export --checkpoint FILE --out FILE [options]\n\n" << desc;
    return 0;
  }
  // A file that is not a readable checkpoint is bad input too (exit 2).
  hcl::train::TrainedModel trained = hcl::as_input([&] { return hcl::train::load_checkpoint_model(checkpoint); });
  const hcl::train::TrainConfig& config = trained.config;
  hcl::model::ContrastiveModel& net = trained.model;
  hcl::persist::export_for_python(net, hcl::train::export_description(config), out, with_head);
  if (!sample.empty()) hcl::persist::write_verification_sample(net, config.dataset, sample);
  std::cout << "exported " << hcl::name_of(config.arch) << " (" << hcl::name_of(config.stem) << " stem) to "
            << out << (with_head ? " with the projection head" : "") << "; configuration in " << out
            << ".json\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-export")) return 0;  // no MPI, no data
  return hcl::run_guarded("hcl-export", [&] { return export_model(argc, argv); });
}
