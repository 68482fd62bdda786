// The autograd function behind dist::all_gather_with_grad.
#include "dist/gather.h"

#include "dist/saved_communicator.h"

namespace hcl::dist {
namespace {

// The communicator reaches backward through ctx->saved_data (dist/saved_communicator.h).
class AllGatherFunction : public torch::autograd::Function<AllGatherFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor local, Communicator* comm,
                               CollectiveOptions call) {
    ctx->saved_data["comm"] = save_communicator(*comm, call);
    return comm->all_gather(local, call);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = saved_communicator(ctx->saved_data["comm"]);
    torch::Tensor grad_local =
        saved->comm().reduce_scatter(grads[0].contiguous(), ReduceOp::Sum, saved->call());
    return {grad_local, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor all_gather_with_grad(Communicator& comm, const torch::Tensor& local, const CollectiveOptions& call) {
  return AllGatherFunction::apply(local, &comm, call);
}

}  // namespace hcl::dist
