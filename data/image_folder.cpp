// ImageFolder: per-image decode tasks on the worker pool, crops cut at decode time.
#include "data/image_folder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/check.h"
#include "core/log.h"

namespace hcl::data {
namespace {

// With skip_bad_images, how many images in a row may fail before the dataset itself is in doubt.
constexpr int64_t kMaxConsecutiveBad = 64;

// The DCT scale a decode may use so that every box still has at least `size` pixels per side.
double min_scale_for(const CropBox* boxes, int count, int64_t size) {
  double scale = 0;
  for (int b = 0; b < count; ++b)
    scale = std::max(scale, static_cast<double>(size) / std::min(boxes[b].width, boxes[b].height));
  return std::min(scale, 1.0);
}

// `box` (in the header's pixels) in the pixels of the decoded, possibly scaled, image.
CropBox rescale(const CropBox& box, const ImageSize& header, const RgbImage& image) {
  const double sx = static_cast<double>(image.width) / header.width;
  const double sy = static_cast<double>(image.height) / header.height;
  return {box.x0 * sx, box.y0 * sy, box.width * sx, box.height * sy};
}

}  // namespace

std::string read_whole_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer (no effect on the
  // reads of a regular file); anything but a regular file is refused before it is read.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  HCL_REQUIRE(fd >= 0, "cannot read '", path, "': ", std::strerror(errno));
  struct stat st {};
  std::string bytes;
  bool ok = ::fstat(fd, &st) == 0;
  if (ok && !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(detail::concat("cannot read '", path, "': not a regular file (",
                               S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket" : "a device or other special file", ")"));
  }
  if (ok) bytes.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  bool shrank = false;
  while (ok && !shrank && done < bytes.size()) {  // one read for a file of a few hundred KiB
    const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n >= 0;
    shrank = n == 0;
    if (n > 0) done += static_cast<size_t>(n);
  }
  const int error = errno;
  ::close(fd);
  HCL_REQUIRE(ok && !shrank, "cannot read '", path, "': ", shrank ? "the file shrank while it was read" : std::strerror(error));
  return bytes;
}

ImageFolder::ImageFolder(ImageIndex index, ImageFolderOptions options)
    : index_(std::move(index)), options_(options), pool_(options.workers()) {
  HCL_REQUIRE(options_.crop_size() >= 8, "image folder: crop size must be at least 8 pixels, got ",
              options_.crop_size());
  HCL_REQUIRE(index_.size() > 0, index_.root, "/", index_.split, ": no images");
}

void ImageFolder::note_bad(int64_t i, const std::exception& e) const {
  std::lock_guard<std::mutex> lock(bad_mutex_);
  if (!bad_.insert(i).second) return;
  skipped_.fetch_add(1);
  HCL_LOG(warning) << "skipping a bad image (--skip-bad-images; " << bad_.size() << " so far): " << e.what();
}

ImageFolder::Source ImageFolder::open(int64_t i) const {
  for (int64_t attempt = 0;; ++attempt) {
    const int64_t at = (i + attempt) % index_.size();
    try {
      Source s{at, read_whole_file(index_.path(at)), {}};
      s.size = read_image_size(s.bytes, index_.path(at));
      return s;
    } catch (const Error& e) {
      if (!options_.skip_bad_images()) throw;
      note_bad(at, e);
      HCL_REQUIRE(attempt + 1 < kMaxConsecutiveBad, kMaxConsecutiveBad, " images in a row from ", index_.path(i),
                  " on cannot be read or decoded: is the dataset complete? (last: ", e.what(), ")");
    }
  }
}

RgbImage ImageFolder::decode(const Source& s, double min_scale) const {
  return decode_image(s.bytes, index_.path(s.index), min_scale, options_.max_pixels());
}

void ImageFolder::cut(int64_t i, int count, const std::function<void(const ImageSize&, CropBox*)>& boxes_for,
                      uint8_t* const* tiles, int64_t plane_stride) const {
  const int64_t s = options_.crop_size();
  for (int64_t attempt = 0, at = i;; ++attempt) {
    const Source src = open(at);
    CropBox boxes[2];
    boxes_for(src.size, boxes);  // sized by the image that decodes, keyed by the one asked for
    try {
      const RgbImage image = decode(src, min_scale_for(boxes, count, s));
      for (int b = 0; b < count; ++b) crop_resize(image, rescale(boxes[b], src.size, image), s, tiles[b], plane_stride);
      return;
    } catch (const Error& e) {
      if (!options_.skip_bad_images() || attempt + 1 >= kMaxConsecutiveBad) throw;
      note_bad(src.index, e);
      at = (src.index + 1) % index_.size();
    }
  }
}

torch::Tensor ImageFolder::decode_views(const torch::Tensor& indices, int64_t epoch,
                                        const TwoViewAugmenter& augmenter, bool pin) const {
  const int64_t s = options_.crop_size(), n = indices.size(0);
  HCL_REQUIRE(augmenter.options().output_size() == s, "image folder: the augmentation makes ",
              augmenter.options().output_size(), "-pixel views, the folder crops ", s);
  const torch::Tensor idx = indices.to(torch::kCPU, torch::kLong).contiguous();
  torch::Tensor out = torch::empty({n, 3, 2 * s, s}, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(pin));
  const int64_t* index = idx.data_ptr<int64_t>();
  uint8_t* base = out.data_ptr<uint8_t>();
  pool_.parallel_for(n, [&](int64_t k) {
    uint8_t* const tiles[2] = {base + k * 3 * 2 * s * s, base + (k * 3 * 2 + 1) * s * s};  // view 1 below view 0
    cut(index[k], 2, [&](const ImageSize& size, CropBox* boxes) {
      for (int v = 0; v < 2; ++v) boxes[v] = augmenter.crop_box(index[k], epoch, v, size.height, size.width);
    }, tiles, 2 * s * s);
  });
  return out;
}

torch::Tensor ImageFolder::decode_centred(const torch::Tensor& indices) const {
  const int64_t s = options_.crop_size(), n = indices.size(0);
  const torch::Tensor idx = indices.to(torch::kCPU, torch::kLong).contiguous();
  torch::Tensor out = torch::empty({n, 3, s, s}, torch::kUInt8);
  const int64_t* index = idx.data_ptr<int64_t>();
  uint8_t* base = out.data_ptr<uint8_t>();
  pool_.parallel_for(n, [&](int64_t k) {
    uint8_t* const tile = base + k * 3 * s * s;
    cut(index[k], 1, [](const ImageSize& size, CropBox* box) {
      const double side = static_cast<double>(std::min(size.height, size.width));
      *box = {(size.width - side) / 2, (size.height - side) / 2, side, side};
    }, &tile, s * s);
  });
  return out;
}

}  // namespace hcl::data
