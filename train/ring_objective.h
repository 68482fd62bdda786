// The global-batch objective as a ring: the same loss and gradients as the all-gather form
// (train/global_objective.h), without the gathered 2WB x d views and their gradient. Each rank keeps
// its 2B views; in W - 1 steps every block of views moves on to the next rank while each rank adds
// its anchors' scores against the block it holds to the log-space column sums of loss/ (the next
// block's transfer overlaps that work on CUDA: a communication stream). Backward scores the blocks
// again (the scores are never stored, as in the all-gather form), in one of two ways:
//   Resend: the blocks go round the ring once more, each block's gradient following it one step
//     behind in the same messages (every rank adds its part), and one last shift hands every
//     gradient back to its owner. Per-rank memory stays O(B d) whatever W: the default.
//   Keep: forward keeps the W blocks it received, and only the gradients travel (a ring
//     reduce-scatter): half the bytes backward, but O(W B d) memory again, as the all-gather form.
// docs/scaling.md has the measurements behind the default.
#pragma once

#include <torch/torch.h>

#include "dist/communicator.h"
#include "loss/objective.h"

namespace hcl::train {

enum class RingBackward { Resend, Keep };

// Collective. z1, z2: B x d on every rank (the same B everywhere). The returned loss is the mean
// over this rank's 2B anchors, as global_objective's.
loss::ObjectiveResult ring_objective(dist::Communicator& comm, const torch::Tensor& z1, const torch::Tensor& z2,
                                     const loss::ObjectiveOptions& options,
                                     RingBackward backward = RingBackward::Resend);

}  // namespace hcl::train
