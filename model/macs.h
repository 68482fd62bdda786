// Multiply-adds of a forward pass, counted from the convolutions and matrix products that LibTorch
// actually runs (RecordFunction observers on this thread), so the count follows any model and input
// shape: the figure behind model FLOP utilisation (a training step is about 3x the forward).
#pragma once

#include <cstdint>
#include <functional>

namespace hcl::model {

// Runs `forward` once and returns the multiply-adds of its convolutions (aten::convolution) and
// matrix products (addmm, mm, bmm); products nested inside a counted op are not counted again.
// Elementwise work (normalisation, activations, pooling) is not counted, as is customary.
int64_t count_macs(const std::function<void()>& forward);

}  // namespace hcl::model
