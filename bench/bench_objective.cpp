// Benchmark of the objective (forward + backward) for 2N views of dimension 128, hard and easy,
// unchunked and chunked, on the CPU or a GPU. Times are medians of runs that alternate hard and easy
// in this process (side by side, so machine noise hits both alike). Peak memory: on the CPU from one
// run of each case in a fresh child process (so that each peak is its own), on CUDA the caching
// allocator's peak over one run. With --anchors A, A of the 2N views are anchors scored against all
// 2N (one rank's share of the global batch, A = 2B); otherwise every view is one. Each case reports
// its time per score (anchors x candidates), the cost the scaling model takes as an input.
// Prints one JSON object.
//   hcl-bench-objective [--sizes 512,2048,8192,32768] [--chunk 4096] [--repeats 3] [--threads N]
//                       [--device cpu|cuda] [--anchors A]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <sstream>

#include "bench/options.h"
#include "bench/timing.h"
#include "core/device.h"
#include "core/run_guarded.h"
#include "dist/version.h"
#include "loss/objective.h"

extern char** environ;

namespace {

using hcl::loss::Estimator;

struct Case {
  int64_t views = 0, chunk = 0;
  std::string estimator;
  int64_t anchors = 0;  // 0: every view
};

// One forward + backward of a case on fixed embeddings (finished on the device when it returns).
void run_once(const Case& c, const torch::Tensor& z) {
  const auto options = hcl::loss::ObjectiveOptions()
                           .estimator(hcl::parse<hcl::loss::Estimator>("estimator", c.estimator))
                           .column_chunk(c.chunk)
                           .with_stats(false)
                           .check_values(false);
  if (c.anchors == 0) {
    const int64_t b = c.views / 2;
    torch::Tensor z1 = z.narrow(0, 0, b).clone().requires_grad_(true);
    torch::Tensor z2 = z.narrow(0, b, b).clone().requires_grad_(true);
    hcl::loss::contrastive_objective(z1, z2, options).loss.backward();
  } else {  // as rank 0 of the global batch: its 2B views against all the gathered ones
    torch::Tensor local = z.narrow(0, 0, c.anchors).clone().requires_grad_(true);
    torch::Tensor all = z.clone().requires_grad_(true);
    hcl::loss::contrastive_objective(local, all, hcl::loss::ViewLayout{c.anchors / 2, 0, 0}, options).loss.backward();
  }
  hcl::synchronize_device(z.device());
}

torch::Tensor embeddings(int64_t views, const torch::Device& device) {
  torch::manual_seed(0);
  return torch::nn::functional::normalize(torch::randn({views, 128}),
                                          torch::nn::functional::NormalizeFuncOptions().dim(1))
      .to(device);
}

// What names a case in the JSON.
nlohmann::json describe(const Case& c) { return {{"views", c.views}, {"estimator", c.estimator}, {"chunk", c.chunk}}; }

// Child (CPU): one run of a case, print {"peak_rss_mib":...}.
int run_case(const Case& c) {
  run_once(c, embeddings(c.views, torch::kCPU));
  std::cout << nlohmann::json{{"peak_rss_mib", hcl::bench::peak_rss_mib()}}.dump() << std::endl;
  return 0;
}

// CUDA: the caching allocator's peak over one run of the case, in MiB.
nlohmann::json device_peak(const Case& c, const torch::Tensor& z) {
  hcl::reset_peak_device_memory(z.device());
  run_once(c, z);
  nlohmann::json r = describe(c);
  r["peak_device_mib"] = hcl::peak_device_memory_mib(z.device());
  return r;
}

// Medians of `repeats` alternating runs of each case (after one warm-up each), in milliseconds.
std::vector<double> alternate(const std::vector<Case>& cases, int repeats, const torch::Device& device) {
  std::vector<torch::Tensor> z;
  for (const Case& c : cases) {
    z.push_back(embeddings(c.views, device));
    run_once(c, z.back());
  }
  std::vector<std::vector<double>> times(cases.size());
  for (int r = 0; r < repeats; ++r)
    for (size_t i = 0; i < cases.size(); ++i)
      times[i].push_back(hcl::bench::seconds_of([&] { run_once(cases[i], z[i]); }) * 1000);
  std::vector<double> medians;
  for (auto& t : times) {
    std::sort(t.begin(), t.end());
    medians.push_back(t[t.size() / 2]);
  }
  return medians;
}

nlohmann::json spawn_case(const char* self, const Case& c, int threads) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::vector<std::string> args = {self, "--case", std::to_string(c.views), c.estimator,
                                    std::to_string(c.chunk), std::to_string(c.anchors), std::to_string(threads)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, self, &actions, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("posix_spawn failed");
  close(fds[1]);
  std::string output;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) > 0) output.append(buffer, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  posix_spawn_file_actions_destroy(&actions);
  nlohmann::json r = describe(c);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || output.empty()) {
    r["error"] = WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status)) + " (out of memory?)"
                                     : "exited with status " + std::to_string(WEXITSTATUS(status));
    return r;
  }
  r.update(nlohmann::json::parse(output));
  return r;
}

std::vector<int64_t> parse_sizes(const std::string& text) {
  std::vector<int64_t> sizes;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) sizes.push_back(std::stoll(item));
  return sizes;
}

int bench(int argc, char** argv) {
  if (argc == 7 && std::string(argv[1]) == "--case") {
    torch::set_num_threads(std::stoi(argv[6]));
    return run_case({std::stoll(argv[2]), std::stoll(argv[4]), argv[3], std::stoll(argv[5])});
  }
  std::vector<int64_t> sizes = {512, 2048, 8192, 32768};
  int64_t chunk = 4096, anchors = 0;
  int repeats = 5, threads = torch::get_num_threads();
  std::string size_list, device_name = "cpu";
  namespace po = boost::program_options;
  po::options_description desc("hcl-bench-objective options");
  desc.add_options()("sizes", po::value(&size_list), "comma-separated view counts 2N (default 512,2048,8192,32768)")(
      "chunk", po::value(&chunk)->default_value(chunk), "column chunk of the chunked runs (0: none)")(
      "repeats", po::value(&repeats)->default_value(repeats), "timed runs per case (the median is reported)")(
      "threads", po::value(&threads)->default_value(threads), "CPU threads")(
      "device", po::value(&device_name)->default_value(device_name), "cpu or cuda")(
      "anchors", po::value(&anchors)->default_value(anchors),
      "anchors per case, scored against all 2N views (even, at most 2N; 0: every view)");
  torch::Device device = torch::kCPU;
  const bool run = hcl::as_input([&] {
    if (!hcl::bench::parse_options(argc, argv, "hcl-bench-objective [options]", desc)) return false;
    if (!size_list.empty()) sizes = parse_sizes(size_list);
    device = hcl::resolve_device(hcl::parse<hcl::DeviceChoice>("device", device_name), 0);
    HCL_REQUIRE(anchors >= 0 && anchors % 2 == 0, "--anchors must be even and >= 0, got ", anchors);
    for (int64_t views : sizes)
      HCL_REQUIRE(views >= 4 && views % 2 == 0 && anchors <= views, "--sizes: ", views,
                  " views must be even, at least 4 and at least --anchors (", anchors, ")");
    return true;
  });
  if (!run) return 0;
  torch::set_num_threads(threads);
  hcl::configure_fast_math(device);  // as hcl-train: TF32 products on CUDA
  nlohmann::json results = nlohmann::json::array(), ratios = nlohmann::json::object();
  for (int64_t views : sizes) {
    std::vector<Case> cases = {{views, 0, "hard", anchors}, {views, 0, "easy", anchors}};
    if (chunk > 0 && chunk < views) {
      cases.push_back({views, chunk, "hard", anchors});
      cases.push_back({views, chunk, "easy", anchors});
    }
    const std::vector<double> ms = alternate(cases, repeats, device);
    const double scores = static_cast<double>(anchors > 0 ? anchors : views) * static_cast<double>(views);
    for (size_t i = 0; i < cases.size(); ++i) {
      nlohmann::json r = device.is_cuda() ? device_peak(cases[i], embeddings(views, device))
                                          : spawn_case(argv[0], cases[i], threads);
      r["ms"] = ms[i];
      r["ns_per_score"] = ms[i] * 1e6 / scores;
      std::cerr << r.dump() << std::endl;
      results.push_back(r);
    }
    ratios[std::to_string(views)] = ms[0] / ms[1];
  }
  std::cout << nlohmann::json{{"benchmark", "objective forward+backward"}, {"device", device.str()},
                              {"threads", threads}, {"dim", 128}, {"repeats", repeats}, {"anchors", anchors},
                              {"results", results}, {"hard_over_easy_unchunked", ratios}}
                   .dump(2)
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-bench-objective")) return 0;  // no MPI, no data
  return hcl::run_guarded("hcl-bench-objective", [&] { return bench(argc, argv); });
}
