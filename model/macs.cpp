// count_macs: a thread-local RecordFunction observer that reads the shapes of each counted op.
#include "model/macs.h"

#include <ATen/record_function.h>

#include <cstring>
#include <vector>

#include "core/check.h"

namespace hcl::model {
namespace {

thread_local int64_t total_macs = 0;
thread_local int depth = 0;  // counted ops in progress (inner products of a counted op are skipped)

bool counted(const char* name) {
  for (const char* op : {"aten::convolution", "aten::addmm", "aten::mm", "aten::bmm"})
    if (std::strcmp(name, op) == 0) return true;
  return false;
}

std::vector<int64_t> int_list(const c10::IValue& v) {
  return v.isIntList() ? v.toIntVector() : std::vector<int64_t>{};
}

// aten::convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
int64_t convolution_macs(c10::ArrayRef<const c10::IValue> in) {
  const auto x = in[0].toTensor().sizes(), w = in[1].toTensor().sizes();
  const auto stride = int_list(in[3]), padding = int_list(in[4]), dilation = int_list(in[5]);
  HCL_REQUIRE(!in[6].toBool(), "count_macs: transposed convolutions are not supported");
  // Output positions per sample: product over the spatial dimensions.
  int64_t positions = 1;
  for (size_t d = 2; d < x.size(); ++d) {
    const size_t i = d - 2;
    const int64_t s = stride.size() > i ? stride[i] : stride.at(0);
    const int64_t p = padding.size() > i ? padding[i] : padding.at(0);
    const int64_t dl = dilation.size() > i ? dilation[i] : dilation.at(0);
    positions *= (x[d] + 2 * p - dl * (w[d] - 1) - 1) / s + 1;
  }
  int64_t per_output = 1;  // weight: out x (in / groups) x kernel...
  for (size_t d = 1; d < w.size(); ++d) per_output *= w[d];
  return x[0] * positions * w[0] * per_output;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  if (!counted(fn.name())) return nullptr;
  if (depth++ > 0) return nullptr;
  const auto in = fn.inputs();
  const std::string name = fn.name();
  if (name == "aten::convolution") {
    total_macs += convolution_macs(in);
  } else if (name == "aten::addmm") {  // (bias, a: n x k, b: k x m)
    const auto a = in[1].toTensor().sizes(), b = in[2].toTensor().sizes();
    total_macs += a[0] * a[1] * b[1];
  } else if (name == "aten::mm") {
    const auto a = in[0].toTensor().sizes(), b = in[1].toTensor().sizes();
    total_macs += a[0] * a[1] * b[1];
  } else {  // bmm: (batch x n x k) (batch x k x m)
    const auto a = in[0].toTensor().sizes(), b = in[1].toTensor().sizes();
    total_macs += a[0] * a[1] * a[2] * b[2];
  }
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
  if (counted(fn.name())) --depth;
}

}  // namespace

int64_t count_macs(const std::function<void()>& forward) {
  total_macs = 0;
  depth = 0;
  const at::CallbackHandle handle =
      at::addThreadLocalCallback(at::RecordFunctionCallback(on_start, on_end).needsInputs(true));
  try {
    forward();
  } catch (...) {
    at::removeCallback(handle);
    throw;
  }
  at::removeCallback(handle);
  return total_macs;
}

}  // namespace hcl::model
