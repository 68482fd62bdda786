// Reads the golden cases of the objective (format: ../shared/golden/README.md): every *.json in
// <shared>/golden/loss, plus every *.json in $HCL_GOLDEN_DIR when that is set.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hcl::test {

struct GoldenCase {
  std::string file;
  std::string name;
  std::string estimator;
  double temperature = 0, beta = 0, tau_plus = 0;
  int64_t batch = 0, dim = 0, clamped_rows = 0;
  double loss = 0;
  torch::Tensor out_1, out_2, grad_out_1, grad_out_2;  // float64, batch x dim
};

inline std::string shared_dir() {
  const char* env = std::getenv("HCL_SHARED_DIR");
  return env && *env ? env : HCL_DEFAULT_SHARED_DIR;
}

inline std::vector<std::string> golden_files() {
  std::vector<std::filesystem::path> dirs = {std::filesystem::path(shared_dir()) / "golden" / "loss"};
  if (const char* extra = std::getenv("HCL_GOLDEN_DIR"); extra && *extra) dirs.emplace_back(extra);
  std::vector<std::string> files;
  for (const auto& dir : dirs) {
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
      if (entry.path().extension() == ".json") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  // A golden test that found no case has tested nothing: it fails (on a GPU machine, where ../shared
  // is not there, scripts/gpu_check points HCL_SHARED_DIR at the copy it carries).
  if (files.empty())
    ADD_FAILURE() << "no golden case (*.json) in " << dirs.front().string()
                  << (dirs.size() > 1 ? " nor in $HCL_GOLDEN_DIR" : "")
                  << ": set HCL_SHARED_DIR to the folder that holds golden/loss";
  return files;
}

inline torch::Tensor matrix_from_json(const nlohmann::json& rows) {
  std::vector<double> values;
  for (const auto& row : rows)
    for (const auto& v : row) values.push_back(v.get<double>());
  const auto n = static_cast<int64_t>(rows.size());
  return torch::tensor(values, torch::kDouble).reshape({n, n ? -1 : 0});
}

inline GoldenCase load_golden(const std::string& file) {
  std::ifstream in(file);
  const nlohmann::json j = nlohmann::json::parse(in);
  GoldenCase c;
  c.file = file;
  c.name = j.at("name");
  c.estimator = j.at("estimator");
  c.temperature = j.at("temperature");
  c.beta = j.at("beta");
  c.tau_plus = j.at("tau_plus");
  c.batch = j.at("batch");
  c.dim = j.at("dim");
  c.clamped_rows = j.value("clamped_rows", 0);
  c.loss = j.at("loss");
  c.out_1 = matrix_from_json(j.at("out_1"));
  c.out_2 = matrix_from_json(j.at("out_2"));
  c.grad_out_1 = matrix_from_json(j.at("grad_out_1"));
  c.grad_out_2 = matrix_from_json(j.at("grad_out_2"));
  return c;
}

// |actual - expected| <= rtol * |expected| + atol, elementwise; a message naming the worst entry.
inline ::testing::AssertionResult close(const torch::Tensor& actual, const torch::Tensor& expected,
                                        double rtol, double atol = 0.0) {
  const torch::Tensor a = actual.to(torch::kDouble), e = expected.to(torch::kDouble);
  if (a.sizes() != e.sizes())
    return ::testing::AssertionFailure() << "shape " << a.sizes() << " vs " << e.sizes();
  const torch::Tensor excess = (a - e).abs() - (e.abs() * rtol + atol);
  if (a.numel() == 0 || excess.max().item<double>() <= 0) return ::testing::AssertionSuccess();
  const int64_t worst = excess.flatten().argmax().item<int64_t>();
  return ::testing::AssertionFailure()
         << "worst entry " << worst << ": " << a.flatten()[worst].item<double>() << " vs expected "
         << e.flatten()[worst].item<double>() << " (rtol " << rtol << ", atol " << atol << ")";
}

// ||actual - expected|| <= rtol * ||expected||: the relative error of a whole tensor.
inline ::testing::AssertionResult close_norm(const torch::Tensor& actual, const torch::Tensor& expected,
                                             double rtol) {
  const torch::Tensor a = actual.to(torch::kDouble), e = expected.to(torch::kDouble);
  const double error = (a - e).norm().item<double>(), scale = e.norm().item<double>();
  if (error <= rtol * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative error " << error / scale << " > " << rtol;
}

}  // namespace hcl::test
