// The global-batch objective as a ring: the same loss and gradients as the all-gather form
// (train/global_objective.h), with per-rank memory O(B d + B x chunk) instead of O(W B d) for the
// gathered views and their gradient. Each rank keeps its 2B views; in W - 1 steps every block of
// views moves on to the next rank while each rank adds its anchors' scores against the block it
// holds to the log-space column sums of loss/ (the next block's transfer overlaps that work on
// CUDA: a communication stream). Backward recomputes the scores block by block as the all-gather
// form does, passing the blocks round the ring once more; each block's gradient follows it one step
// behind in the same messages (every rank adds its part), so those transfers overlap the work too,
// and one last shift hands every gradient back to its owner. Why recompute rather than keep the W
// blocks from forward: keeping them would bring back the O(W B d) memory that the ring removes, and
// the blocks must travel again anyway to carry their gradients home.
#pragma once

#include <torch/torch.h>

#include "dist/communicator.h"
#include "loss/objective.h"

namespace hcl::train {

// Collective. z1, z2: B x d on every rank (the same B everywhere). The returned loss is the mean
// over this rank's 2B anchors, as global_objective's.
loss::ObjectiveResult ring_objective(dist::Communicator& comm, const torch::Tensor& z1, const torch::Tensor& z2,
                                     const loss::ObjectiveOptions& options);

}  // namespace hcl::train
