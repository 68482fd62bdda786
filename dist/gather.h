// A differentiable all-gather: forward concatenates every rank's tensor along dim 0 (rank-major);
// backward is a reduce-scatter with SUM, because every rank's loss depends on every rank's rows.
// (A gather without gradient, or with an averaged backward, is wrong by a factor of the world size.)
#pragma once

#include <torch/torch.h>

#include "dist/communicator.h"

namespace hcl::dist {

// Collective: every rank calls it, with the same shape, and later runs backward through it.
// `comm` must outlive the backward pass. `call` applies to the gather and to its backward.
torch::Tensor all_gather_with_grad(Communicator& comm, const torch::Tensor& local,
                                   const CollectiveOptions& call = {});

}  // namespace hcl::dist
