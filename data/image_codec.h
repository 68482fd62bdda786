// JPEG (libjpeg-turbo) and PNG (libpng) decoding into 8-bit RGB, with the two operations the
// image-folder pipeline needs on the host: a decode scaled down by libjpeg-turbo's DCT where the crop
// allows (so a 224-pixel crop of a large photo does not decode every pixel at full size), and an
// antialiased crop-and-resize into a planar C x S x S tile (a triangle filter as wide as the
// reduction, plain bilinear when enlarging; pixel centres as grid_sample's align_corners = false).
// Grayscale, palette, alpha and CMYK images all come out RGB. The encoders exist for tests and
// benchmarks, which write their own image folders. Errors name the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hcl::data {

enum class ImageFormat { Jpeg, Png, Unknown };

// From the first bytes (the magic numbers), not the file name.
ImageFormat sniff_format(const std::string& bytes);

struct ImageSize {
  int64_t height = 0, width = 0;
};

// The image's size from its header alone. Throws hcl::Error naming `path` when the bytes are not
// a JPEG or PNG image, or the header is corrupt.
ImageSize read_image_size(const std::string& bytes, const std::string& path);

// 8-bit RGB pixels, row-major, interleaved (H x W x 3).
struct RgbImage {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;
};

// The most pixels an image may decode to by default (PIL's MAX_IMAGE_PIXELS: about 9459 x 9459,
// 268 MB of RGB); a header can claim any size, and the decoder would allocate it.
constexpr int64_t kDefaultMaxImagePixels = 89478485;

// Decodes the whole image. A JPEG is decoded at the smallest of libjpeg-turbo's scales (k/8) that
// is at least `min_scale` (1: full size), or smaller while the result would exceed `max_pixels`;
// a PNG always at full size. An image that cannot be decoded within `max_pixels` (0: no limit) is
// refused from its header, before anything is allocated. A truncated or corrupt image throws
// hcl::Error naming `path` (libjpeg-turbo's warnings, such as a premature end of data, count as
// errors: the pixels would be partly made up).
RgbImage decode_image(const std::string& bytes, const std::string& path, double min_scale = 1.0,
                      int64_t max_pixels = kDefaultMaxImagePixels);

// A crop box in pixels of the image it applies to: x0, y0, width, height (fractional).
struct CropBox {
  double x0 = 0, y0 = 0, width = 0, height = 0;
};

// Resizes `box` of `image` to size x size and writes it planar (channel c's row y at
// out + c * plane_stride + y * size), so that a tile can land inside a larger tensor.
void crop_resize(const RgbImage& image, const CropBox& box, int64_t size, uint8_t* out, int64_t plane_stride);

// Encoders for tests and benchmarks: interleaved pixels (channels 1 or 3) to a file's bytes.
std::string encode_jpeg(const uint8_t* pixels, int64_t height, int64_t width, int channels, int quality = 90);
std::string encode_png(const uint8_t* pixels, int64_t height, int64_t width, int channels);

}  // namespace hcl::data
