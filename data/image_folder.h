// An image-folder dataset (data/image_index.h) decoded on demand by a pool of worker threads: for
// training, each image is decoded once (scaled down by libjpeg-turbo's DCT where both crops allow)
// and both of its views' random resized crops are cut from it at decode time, with the same keyed
// randomness (seed, epoch, image, view) as the in-memory datasets, so batches do not depend on the
// number of ranks and a resume is exact; the rest of the augmentation (flip, colour, grey, blur)
// runs batched where the model is (TwoViewAugmenter::apply_views). For evaluation, the centred
// square of each image resized to the crop size. A file that cannot be read or decoded raises
// hcl::Error naming it; with skip_bad_images it is logged once, counted and replaced by the next
// image of the index that decodes.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <set>

#include "data/augment.h"
#include "data/image_codec.h"
#include "data/image_index.h"
#include "data/worker_pool.h"

namespace hcl::data {

struct ImageFolderOptions {
  TORCH_ARG(int64_t, crop_size) = 224;  // side of the views and of the evaluation images
  TORCH_ARG(int, workers) = 1;          // decode threads
  TORCH_ARG(bool, skip_bad_images) = false;
  TORCH_ARG(int64_t, max_pixels) = kDefaultMaxImagePixels;  // decode_image's limit (0: none)
};

class ImageFolder {
 public:
  ImageFolder(ImageIndex index, ImageFolderOptions options);

  const ImageIndex& index() const { return index_; }
  const ImageFolderOptions& options() const { return options_; }

  // Both views of the given images (dataset indices) of an epoch, cropped and resized at decode
  // time: uint8 N x 3 x 2S x S, view 0 in rows [0, S) and view 1 in rows [S, 2S) of each image
  // (the layout TwoViewAugmenter::sample_cropped_views describes); pinned when `pin`.
  torch::Tensor decode_views(const torch::Tensor& indices, int64_t epoch, const TwoViewAugmenter& augmenter,
                             bool pin) const;
  // Evaluation images: the centred square of each, resized to S: uint8 N x 3 x S x S.
  torch::Tensor decode_centred(const torch::Tensor& indices) const;

  // Images replaced so far because they could not be read or decoded (skip_bad_images).
  int64_t skipped_images() const { return skipped_.load(); }

 private:
  // The file's bytes and header size of image i, or with skip_bad_images of the first image from
  // i on that can be read and decoded.
  struct Source {
    int64_t index;
    std::string bytes;
    ImageSize size;
  };
  Source open(int64_t i) const;
  RgbImage decode(const Source& s, double min_scale) const;
  // Decodes image i once (or, with skip_bad_images, the first image from i on that decodes) and
  // cuts `count` (1 or 2) crops of it into `tiles` (planar, crop size squared, `plane_stride`
  // apart per channel); boxes_for gives the boxes for the decoded file's size.
  void cut(int64_t i, int count, const std::function<void(const ImageSize&, CropBox*)>& boxes_for,
           uint8_t* const* tiles, int64_t plane_stride) const;
  void note_bad(int64_t i, const std::exception& e) const;

  ImageIndex index_;
  ImageFolderOptions options_;
  mutable WorkerPool pool_;
  mutable std::atomic<int64_t> skipped_{0};
  mutable std::mutex bad_mutex_;
  mutable std::set<int64_t> bad_;  // logged once each
};

// Reads a whole file; throws hcl::Error "cannot read '<path>': <reason>".
std::string read_whole_file(const std::string& path);

}  // namespace hcl::data
