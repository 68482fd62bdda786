// The SimCLR two-view augmentation of the reference as batched tensor operations that run where the
// batch lives (the GPU when training on one): random resized crop and horizontal flip (one
// grid_sample over both views of every image: per-sample affine grids), colour jitter with p = 0.8
// (brightness, contrast, saturation, hue, applied in that order), grayscale with p = 0.2, optional
// Gaussian blur, normalisation. Single-channel images get brightness and contrast only.
//
// Randomness is keyed by (seed, epoch, image index, view) and drawn on the host (a dozen numbers per
// image), so a view never depends on the rank, the world size or the batch it arrived in.
//
// Two ways in. views() is the fast one: sample_views() draws both views' parameters of a batch
// into ONE float32 host tensor (pinned on request: meant for the prefetch thread), apply_views()
// uploads it with one non-blocking copy and makes both views in one batched pass (about 40 kernels
// whatever the batch size), with no host read, written in the memory format asked for
// (channels_last for a GPU).
// view() / sample() / apply() make one view at a time (the older API; same kernel, same draws).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "data/image_codec.h"

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

// The normalisation constants of a dataset (mean, std per channel; data/dataset.h's table).
std::pair<std::vector<double>, std::vector<double>> dataset_normalization(DatasetKind dataset,
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
  // Both views' parameters for the given images (dataset indices) of an epoch: a float32 CPU
  // tensor (pinned when `pin`), image-major rows (image i, view v) of packed_width() values, then
  // packed_constants(channels) values. Host only, no ATen kernels beyond the allocation.
  torch::Tensor sample_views(const torch::Tensor& indices, int64_t epoch, int64_t channels,
                             int64_t height, int64_t width, bool pin = false) const;
  // Both views of uint8 N x C x H x W images (any device) from sample_views()'s tensor (copied to
  // the images' device without blocking when it is elsewhere): float 2N x C x S x S, view-major
  // (rows [0, N) are view 0, rows [N, 2N) view 1), normalised, in `format`.
  torch::Tensor apply_views(const torch::Tensor& images, const torch::Tensor& params,
                            torch::MemoryFormat format = torch::MemoryFormat::Contiguous) const;
  // sample_views + apply_views: equals torch::cat({view(.., 0), view(.., 1)}) up to rounding.
  torch::Tensor views(const torch::Tensor& images, const torch::Tensor& indices, int64_t epoch,
                      torch::MemoryFormat format = torch::MemoryFormat::Contiguous) const;
  // The random resized crop of one view of an image of height x width (the box views() would use):
  // what an image-folder dataset cuts at decode time (data/image_folder.h).
  CropBox crop_box(int64_t index, int64_t epoch, int view, int64_t height, int64_t width) const;
  // Both views' parameters (as sample_views) for images whose views were cropped at decode time
  // into one uint8 N x C x 2S x S tensor, view 0 above view 1: each view's crop is its half, the
  // flips and colour draws are those of the same images in views().
  torch::Tensor sample_cropped_views(const torch::Tensor& indices, int64_t epoch, int64_t channels,
                                     bool pin = false) const;
  // Evaluation: to float, resized to the output size when needed, normalised.
  torch::Tensor evaluation(const torch::Tensor& images) const;

  const AugmentOptions& options() const { return options_; }
  // Values per (image, view) row of the packed parameters, and after the rows.
  int64_t packed_width() const;
  int64_t packed_constants(int64_t channels) const;

 private:
  struct Draw;
  Draw draw(uint64_t key, int64_t index, int64_t height, int64_t width) const;
  uint64_t epoch_key(int64_t epoch, int view) const;
  void pack(const Draw& d, int64_t height, int64_t width, float* row) const;
  void pack_constants(int64_t channels, float* out) const;
  // The batched pass over `views` views per image of packed (N x views rows + constants) parameters.
  torch::Tensor run(const torch::Tensor& images, const torch::Tensor& params, int64_t views,
                    torch::MemoryFormat format) const;
  int64_t blur_taps() const;
  torch::Tensor normalize(torch::Tensor x) const;

  AugmentOptions options_;
  uint64_t seed_;
};

}  // namespace hcl::data
