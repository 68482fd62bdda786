// The autograd function behind dist::all_gather_with_grad.
#include "dist/gather.h"

namespace hcl::dist {
namespace {

class AllGatherFunction : public torch::autograd::Function<AllGatherFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor local,
                               int64_t comm_address) {
    ctx->saved_data["comm"] = comm_address;
    return reinterpret_cast<Communicator*>(comm_address)->all_gather(local);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* comm = reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
    torch::Tensor grad_local = comm->reduce_scatter(grads[0].contiguous(), ReduceOp::Sum);
    return {grad_local, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor all_gather_with_grad(Communicator& comm, const torch::Tensor& local) {
  // The communicator travels as an address: autograd's saved data holds only IValues.
  return AllGatherFunction::apply(local, reinterpret_cast<int64_t>(&comm));
}

}  // namespace hcl::dist
