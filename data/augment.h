// The SimCLR two-view augmentation of the reference as batched tensor operations that run where the
// batch lives (the GPU when training on one): random resized crop and horizontal flip for the whole
// batch in one grid_sample call (per-sample affine grids), colour jitter with p = 0.8 (brightness,
// contrast, saturation, hue, applied in that order), grayscale with p = 0.2, optional Gaussian blur,
// normalisation. Single-channel images get brightness and contrast only.
//
// Randomness is keyed by (seed, epoch, image index, view) and drawn on the host (a dozen numbers per
// image), so a view never depends on the rank, the world size or the batch it arrived in.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace hcl::data {

struct AugmentOptions {
  TORCH_ARG(int64_t, output_size) = 32;
  TORCH_ARG(double, scale_min) = 0.08;
  TORCH_ARG(double, scale_max) = 1.0;
  TORCH_ARG(double, ratio_min) = 3.0 / 4.0;
  TORCH_ARG(double, ratio_max) = 4.0 / 3.0;
  TORCH_ARG(double, flip_p) = 0.5;
  TORCH_ARG(double, jitter_p) = 0.8;
  TORCH_ARG(double, brightness) = 0.4;
  TORCH_ARG(double, contrast) = 0.4;
  TORCH_ARG(double, saturation) = 0.4;
  TORCH_ARG(double, hue) = 0.1;
  TORCH_ARG(double, grayscale_p) = 0.2;
  TORCH_ARG(double, blur_p) = 0.0;
  TORCH_ARG(double, blur_sigma_min) = 0.1;
  TORCH_ARG(double, blur_sigma_max) = 2.0;
  // Per-channel normalisation (empty: mean 0.5, std 0.5).
  TORCH_ARG(std::vector<double>, mean);
  TORCH_ARG(std::vector<double>, stddev);

 public:
  // Throws hcl::Error naming the first invalid value.
  void validate() const;
};

// Per-image random parameters of one view (CPU tensors, one row per image).
struct AugmentParams {
  torch::Tensor crop;     // float64 N x 4: x0, y0, width, height in input pixels
  torch::Tensor flip;     // bool N
  torch::Tensor jitter;   // bool N: colour jitter applied
  torch::Tensor factors;  // float64 N x 4: brightness, contrast, saturation, hue
  torch::Tensor gray;     // bool N
  torch::Tensor blur_sigma;  // float64 N: 0 = no blur
};

// The normalisation constants commonly used for a dataset (mean, std per channel).
std::pair<std::vector<double>, std::vector<double>> dataset_normalization(const std::string& dataset,
                                                                          int64_t channels);

class TwoViewAugmenter {
 public:
  TwoViewAugmenter(AugmentOptions options, uint64_t seed);

  // Parameters for the given images (dataset indices) of an epoch and view (0 or 1).
  AugmentParams sample(const torch::Tensor& indices, int64_t epoch, int view, int64_t height,
                       int64_t width) const;
  // Applies them: uint8 N x C x H x W (any device) to float N x C x S x S, normalised.
  torch::Tensor apply(const torch::Tensor& images, const AugmentParams& params) const;
  // sample + apply.
  torch::Tensor view(const torch::Tensor& images, const torch::Tensor& indices, int64_t epoch,
                     int view) const;
  // Evaluation: to float, resized to the output size when needed, normalised.
  torch::Tensor evaluation(const torch::Tensor& images) const;

  const AugmentOptions& options() const { return options_; }

 private:
  torch::Tensor normalize(torch::Tensor x) const;

  AugmentOptions options_;
  uint64_t seed_;
};

}  // namespace hcl::data
