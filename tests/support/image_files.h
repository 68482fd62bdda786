// Test helpers: a temporary folder, and images written into it as JPEG or PNG files (RGB, grey,
// CMYK) from uint8 3 x H x W tensors, for the image-folder tests.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "data/image_codec.h"

namespace hcl::testing {

// A fresh folder under the temporary directory, named after the test, removed at the end.
class TempFolder {
 public:
  TempFolder()
      : path_(std::filesystem::temp_directory_path() /
              ("hcl_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempFolder() { std::filesystem::remove_all(path_); }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

enum class FileKind { Jpeg, Png, GreyJpeg, GreyPng, CmykJpeg };

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The bytes of a uint8 3 x H x W image in the given kind (grey: the first channel; CMYK: Adobe's
// inverted C = R, M = G, Y = B, K = 255, which decodes back to the same RGB).
inline std::string encode(const torch::Tensor& chw, FileKind kind, int quality = 95) {
  const int64_t h = chw.size(1), w = chw.size(2);
  const bool grey = kind == FileKind::GreyJpeg || kind == FileKind::GreyPng;
  torch::Tensor hwc = (grey ? chw.narrow(0, 0, 1) : chw).permute({1, 2, 0}).contiguous();
  if (kind == FileKind::CmykJpeg) hwc = torch::cat({hwc, torch::full({h, w, 1}, 255, torch::kUInt8)}, 2).contiguous();
  const int channels = static_cast<int>(hwc.size(2));
  const uint8_t* p = hwc.data_ptr<uint8_t>();
  if (kind == FileKind::Png || kind == FileKind::GreyPng) return data::encode_png(p, h, w, channels);
  return data::encode_jpeg(p, h, w, channels, quality);
}

// Smooth random images (JPEG keeps them well): low-frequency noise upsampled, plus a class tint.
inline torch::Tensor smooth_image(int64_t h, int64_t w, int64_t seed) {
  torch::manual_seed(static_cast<uint64_t>(seed));
  const torch::Tensor coarse = torch::rand({1, 3, 4, 4}) * 255;
  const torch::Tensor fine = torch::nn::functional::interpolate(
      coarse, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear).align_corners(false));
  return fine.squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
}

}  // namespace hcl::testing
