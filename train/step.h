// The step options that the configuration names: the view-forward mode, the precision and CUDA graphs. The step
// itself is train::TrainStep (train/train_step.h); the device helpers are in core/device.h.
#pragma once

#include "core/named_enum.h"

namespace hcl::train {

// One forward per view (the reference: BatchNorm statistics over the B images of a view) or one
// forward over both views (SimCLR's code: statistics over 2B images; faster on a GPU).
enum class ViewForward { PerView, Joint };

// float32 throughout, or bf16 autocast of the forward (CUDA only).
enum class Precision { Fp32, Bf16 };

// Steps replayed from a CUDA graph: where possible (auto), required (on: refused with a reason
// otherwise), or never (off).
enum class CudaGraphMode { Auto, On, Off };

}  // namespace hcl::train

template <>
struct hcl::EnumNames<hcl::train::ViewForward> {
  static constexpr NamedValue<train::ViewForward> table[] = {
      {train::ViewForward::PerView, "per-view", "BN over B, the reference"},
      {train::ViewForward::Joint, "joint", "BN over 2B"},
  };
};

template <>
struct hcl::EnumNames<hcl::train::Precision> {
  static constexpr NamedValue<train::Precision> table[] = {
      {train::Precision::Fp32, "fp32"},
      {train::Precision::Bf16, "bf16", "bf16 autocast, CUDA only"},
  };
};

template <>
struct hcl::EnumNames<hcl::train::CudaGraphMode> {
  static constexpr NamedValue<train::CudaGraphMode> table[] = {
      {train::CudaGraphMode::Auto, "auto", "where possible"},
      {train::CudaGraphMode::On, "on", "or refuse to start"},
      {train::CudaGraphMode::Off, "off"},
  };
};
