// Batched two-view augmentation: host-drawn per-image parameters, device-side tensor operations.
#include "data/augment.h"

#include <cmath>

#include "core/check.h"
#include "data/sampler.h"

namespace hcl::data {
namespace {

namespace F = torch::nn::functional;

// Uniform draws in [0, 1) from a counter-based stream keyed by one image's view.
class KeyedStream {
 public:
  explicit KeyedStream(uint64_t key) : key_(key) {}
  double uniform() { return static_cast<double>(mix64(key_ + counter_++) >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int64_t integer(int64_t n) { return std::min(n - 1, static_cast<int64_t>(uniform() * n)); }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

// torchvision's RandomResizedCrop.get_params: 10 tries, then a centred crop of a valid ratio.
void resized_crop_box(KeyedStream& rng, const AugmentOptions& o, int64_t height, int64_t width,
                      double* box) {
  const double area = static_cast<double>(height * width);
  const double log_lo = std::log(o.ratio_min()), log_hi = std::log(o.ratio_max());
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(o.scale_min(), o.scale_max());
    const double ratio = std::exp(rng.uniform(log_lo, log_hi));
    const auto w = static_cast<int64_t>(std::round(std::sqrt(target * ratio)));
    const auto h = static_cast<int64_t>(std::round(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      box[1] = static_cast<double>(rng.integer(height - h + 1));
      box[0] = static_cast<double>(rng.integer(width - w + 1));
      box[2] = static_cast<double>(w);
      box[3] = static_cast<double>(h);
      return;
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  double w = width, h = height;
  if (in_ratio < o.ratio_min()) {
    h = std::round(w / o.ratio_min());
  } else if (in_ratio > o.ratio_max()) {
    w = std::round(h * o.ratio_max());
  }
  box[0] = std::floor((width - w) / 2);
  box[1] = std::floor((height - h) / 2);
  box[2] = w;
  box[3] = h;
}

torch::Tensor grayscale(const torch::Tensor& rgb) {  // N x 3 x H x W -> N x 1 x H x W
  return (rgb.select(1, 0) * 0.299 + rgb.select(1, 1) * 0.587 + rgb.select(1, 2) * 0.114).unsqueeze(1);
}

// Hue rotation through HSV (torchvision's formulas), per-image shift in [-0.5, 0.5].
torch::Tensor shift_hue(const torch::Tensor& rgb, const torch::Tensor& shift) {
  const torch::Tensor r = rgb.select(1, 0), g = rgb.select(1, 1), b = rgb.select(1, 2);
  const torch::Tensor maxc = torch::max(torch::max(r, g), b), minc = torch::min(torch::min(r, g), b);
  const torch::Tensor equal = maxc.eq(minc);
  const torch::Tensor ones = torch::ones_like(maxc);
  const torch::Tensor range = maxc - minc;
  const torch::Tensor s = range / torch::where(equal, ones, maxc);
  const torch::Tensor divisor = torch::where(equal, ones, range);
  const torch::Tensor rc = (maxc - r) / divisor, gc = (maxc - g) / divisor, bc = (maxc - b) / divisor;
  const torch::Tensor is_r = maxc.eq(r), is_g = maxc.eq(g).logical_and(is_r.logical_not());
  const torch::Tensor is_b = is_r.logical_not().logical_and(maxc.ne(g));
  torch::Tensor h = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc);
  h = torch::fmod(h / 6.0 + 1.0, 1.0);
  h = torch::remainder(h + shift.view({-1, 1, 1}), 1.0);
  const torch::Tensor v = maxc;
  const torch::Tensor i6 = torch::floor(h * 6.0);
  const torch::Tensor f = h * 6.0 - i6;
  const torch::Tensor i = torch::remainder(i6, 6.0).to(torch::kLong);
  const torch::Tensor p = (v * (1.0 - s)).clamp(0.0, 1.0);
  const torch::Tensor q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
  const torch::Tensor t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
  const torch::Tensor sector = i.unsqueeze(1).eq(torch::arange(6, i.options()).view({1, 6, 1, 1}));
  auto pick = [&](std::initializer_list<torch::Tensor> choices) {
    return (sector * torch::stack(choices, 1)).sum(1);
  };
  return torch::stack({pick({v, q, p, p, t, v}), pick({t, v, v, q, p, p}), pick({p, p, t, v, v, q})}, 1);
}

// Per-image Gaussian blur (sigma 0: identity), separable, reflect padding.
torch::Tensor blur(const torch::Tensor& x, const torch::Tensor& sigma) {
  const int64_t n = x.size(0), c = x.size(1), size = x.size(2);
  // SimCLR's kernel: about a tenth of the image, odd.
  const int64_t k = std::max<int64_t>(3, (size / 10) | 1);
  HCL_REQUIRE(size > k / 2 && x.size(3) > k / 2, "augmentation: images of ", size,
              " pixels are too small to blur");
  const torch::Tensor offsets = torch::arange(k, x.options()) - (k - 1) / 2.0;
  const torch::Tensor s = sigma.to(x.options()).view({n, 1});
  torch::Tensor kernel = torch::exp(-offsets.square().view({1, k}) / (2 * s.square().clamp_min(1e-12)));
  // sigma 0: a delta kernel.
  const torch::Tensor delta = offsets.eq(0).to(x.scalar_type()).view({1, k}).expand({n, k});
  kernel = torch::where(s.gt(0), kernel, delta);
  kernel = kernel / kernel.sum(1, true);
  const torch::Tensor weights = kernel.repeat_interleave(c, 0);  // (n*c) x k
  const int64_t pad = (k - 1) / 2;
  torch::Tensor y = x.reshape({1, n * c, size, x.size(3)});
  y = F::pad(y, F::PadFuncOptions({0, 0, pad, pad}).mode(torch::kReflect));
  y = F::conv2d(y, weights.view({n * c, 1, k, 1}), F::Conv2dFuncOptions().groups(n * c));
  y = F::pad(y, F::PadFuncOptions({pad, pad, 0, 0}).mode(torch::kReflect));
  y = F::conv2d(y, weights.view({n * c, 1, 1, k}), F::Conv2dFuncOptions().groups(n * c));
  return y.view_as(x);
}

}  // namespace

void AugmentOptions::validate() const {
  HCL_REQUIRE(output_size() >= 1, "augmentation: output size must be >= 1, got ", output_size());
  HCL_REQUIRE(scale_min() > 0 && scale_min() <= scale_max() && scale_max() <= 1,
              "augmentation: crop scale must satisfy 0 < min <= max <= 1, got (", scale_min(), ", ",
              scale_max(), ")");
  HCL_REQUIRE(ratio_min() > 0 && ratio_min() <= ratio_max(),
              "augmentation: crop ratio must satisfy 0 < min <= max, got (", ratio_min(), ", ",
              ratio_max(), ")");
  for (double p : {flip_p(), jitter_p(), grayscale_p(), blur_p()})
    HCL_REQUIRE(p >= 0 && p <= 1, "augmentation: probabilities must be in [0, 1], got ", p);
  HCL_REQUIRE(brightness() >= 0 && contrast() >= 0 && saturation() >= 0 && brightness() <= 1 &&
                  contrast() <= 1 && saturation() <= 1,
              "augmentation: brightness, contrast and saturation must be in [0, 1]");
  HCL_REQUIRE(hue() >= 0 && hue() <= 0.5, "augmentation: hue must be in [0, 0.5], got ", hue());
  HCL_REQUIRE(blur_sigma_min() > 0 && blur_sigma_min() <= blur_sigma_max(),
              "augmentation: blur sigma must satisfy 0 < min <= max");
  HCL_REQUIRE(mean().size() == stddev().size(), "augmentation: mean and std differ in length");
  for (double s : stddev()) HCL_REQUIRE(s > 0, "augmentation: std must be > 0, got ", s);
}

std::pair<std::vector<double>, std::vector<double>> dataset_normalization(const std::string& dataset,
                                                                          int64_t channels) {
  if (dataset == "fashion-mnist") return {{0.2860}, {0.3530}};
  if (dataset == "mnist") return {{0.1307}, {0.3081}};
  if (dataset == "cifar10" || dataset == "cifar100")
    return {{0.4914, 0.4822, 0.4465}, {0.2023, 0.1994, 0.2010}};  // the reference's constants
  if (dataset == "stl10") return {{0.4467, 0.4398, 0.4066}, {0.2603, 0.2566, 0.2713}};
  return {std::vector<double>(channels, 0.5), std::vector<double>(channels, 0.5)};
}

TwoViewAugmenter::TwoViewAugmenter(AugmentOptions options, uint64_t seed)
    : options_(std::move(options)), seed_(seed) {
  options_.validate();
}

AugmentParams TwoViewAugmenter::sample(const torch::Tensor& indices, int64_t epoch, int view,
                                       int64_t height, int64_t width) const {
  const int64_t n = indices.size(0);
  const torch::Tensor idx = indices.to(torch::kCPU, torch::kLong).contiguous();
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  AugmentParams p{torch::empty({n, 4}, f64), torch::empty({n}, torch::kBool),
                  torch::empty({n}, torch::kBool), torch::empty({n, 4}, f64),
                  torch::empty({n}, torch::kBool), torch::zeros({n}, f64)};
  auto* crop = p.crop.data_ptr<double>();
  auto* factors = p.factors.data_ptr<double>();
  auto* flip = p.flip.data_ptr<bool>();
  auto* jitter = p.jitter.data_ptr<bool>();
  auto* gray = p.gray.data_ptr<bool>();
  auto* sigma = p.blur_sigma.data_ptr<double>();
  const auto* index = idx.data_ptr<int64_t>();
  const AugmentOptions& o = options_;
  const uint64_t epoch_key = mix64(seed_ ^ mix64(static_cast<uint64_t>(epoch) * 2 + view));
  for (int64_t i = 0; i < n; ++i) {
    KeyedStream rng(mix64(epoch_key ^ mix64(static_cast<uint64_t>(index[i]))));
    resized_crop_box(rng, o, height, width, crop + 4 * i);
    // Fixed draw positions per decision, so one option does not shift the others' randomness.
    KeyedStream decisions(mix64(epoch_key ^ mix64(static_cast<uint64_t>(index[i]) + 0x5bd1e995ULL)));
    flip[i] = decisions.uniform() < o.flip_p();
    jitter[i] = decisions.uniform() < o.jitter_p();
    factors[4 * i + 0] = decisions.uniform(1 - o.brightness(), 1 + o.brightness());
    factors[4 * i + 1] = decisions.uniform(1 - o.contrast(), 1 + o.contrast());
    factors[4 * i + 2] = decisions.uniform(1 - o.saturation(), 1 + o.saturation());
    factors[4 * i + 3] = decisions.uniform(-o.hue(), o.hue());
    gray[i] = decisions.uniform() < o.grayscale_p();
    const bool blurred = decisions.uniform() < o.blur_p();
    const double s = decisions.uniform(o.blur_sigma_min(), o.blur_sigma_max());
    sigma[i] = blurred ? s : 0.0;
  }
  return p;
}

torch::Tensor TwoViewAugmenter::apply(const torch::Tensor& images, const AugmentParams& p) const {
  HCL_ASSERT(images.dim() == 4 && images.scalar_type() == torch::kUInt8,
             "augmentation: expected uint8 N x C x H x W images, got ", images.scalar_type(), " ",
             images.sizes());
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const int64_t s = options_.output_size();
  const auto dev = images.device();
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(dev);
  torch::Tensor x = images.to(torch::kFloat).div_(255.0);

  // Crop + flip: output pixel (u, v) in [-1, 1] maps to the crop's box in input coordinates.
  const torch::Tensor crop = p.crop.to(f32);
  const torch::Tensor x0 = crop.select(1, 0), y0 = crop.select(1, 1), cw = crop.select(1, 2),
                      ch = crop.select(1, 3);
  const torch::Tensor sign = 1.0 - 2.0 * p.flip.to(f32);
  const torch::Tensor zero = torch::zeros({n}, f32);
  const torch::Tensor theta =
      torch::stack({sign * cw / w, zero, (2 * x0 + cw) / w - 1, zero, ch / h, (2 * y0 + ch) / h - 1}, 1)
          .view({n, 2, 3});
  const torch::Tensor grid = F::affine_grid(theta, {n, c, s, s}, /*align_corners=*/false);
  x = F::grid_sample(x, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));

  // Colour jitter (brightness, contrast, then saturation and hue for RGB), per image.
  const torch::Tensor factors = p.factors.to(f32);
  const torch::Tensor jitter = p.jitter.to(dev).view({n, 1, 1, 1});
  torch::Tensor y = (x * factors.select(1, 0).view({n, 1, 1, 1})).clamp_(0, 1);
  const torch::Tensor gray_of_y = c == 3 ? grayscale(y) : y;
  const torch::Tensor mean = gray_of_y.mean({1, 2, 3}, true);
  y = ((y - mean) * factors.select(1, 1).view({n, 1, 1, 1}) + mean).clamp_(0, 1);
  if (c == 3) {
    const torch::Tensor g = grayscale(y);
    y = ((y - g) * factors.select(1, 2).view({n, 1, 1, 1}) + g).clamp_(0, 1);
    y = shift_hue(y, factors.select(1, 3));
  }
  x = torch::where(jitter, y, x);
  if (c == 3) x = torch::where(p.gray.to(dev).view({n, 1, 1, 1}), grayscale(x).expand({n, 3, s, s}), x);
  if (options_.blur_p() > 0) x = blur(x, p.blur_sigma);
  return normalize(x);
}

torch::Tensor TwoViewAugmenter::view(const torch::Tensor& images, const torch::Tensor& indices,
                                     int64_t epoch, int view) const {
  return apply(images, sample(indices, epoch, view, images.size(2), images.size(3)));
}

torch::Tensor TwoViewAugmenter::evaluation(const torch::Tensor& images) const {
  torch::Tensor x = images.to(torch::kFloat).div_(255.0);
  const int64_t s = options_.output_size();
  if (x.size(2) != s || x.size(3) != s)
    x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{s, s}).mode(torch::kBilinear).align_corners(false));
  return normalize(x);
}

torch::Tensor TwoViewAugmenter::normalize(torch::Tensor x) const {
  const int64_t c = x.size(1);
  std::vector<double> mean = options_.mean(), stddev = options_.stddev();
  if (mean.empty()) mean.assign(c, 0.5), stddev.assign(c, 0.5);
  HCL_REQUIRE(static_cast<int64_t>(mean.size()) == c, "augmentation: normalisation has ",
              mean.size(), " channels, images have ", c);
  const auto opts = x.options();
  const torch::Tensor m = torch::tensor(mean, torch::kDouble).to(opts).view({1, c, 1, 1});
  const torch::Tensor sd = torch::tensor(stddev, torch::kDouble).to(opts).view({1, c, 1, 1});
  return (x - m) / sd;
}

}  // namespace hcl::data
