// Counting the ATen ops a piece of code calls, with a thread-local RecordFunction observer (it
// follows the work into autograd's backward): on a CPU, the tests' proxy for the kernels a step
// launches on a GPU and for its host reads (aten::_local_scalar_dense, aten::item); on a GPU, the
// training benchmark's count of ops launched per step (few when the step replays a CUDA graph).
#pragma once

#include <ATen/record_function.h>

#include <functional>
#include <map>
#include <set>
#include <string>

namespace hcl {

// The ATen ops that `fn` calls on this thread: `called` counts the calls made by the caller's code
// (depth 0: not those LibTorch makes inside an op), `all` every call RecordFunction sees.
struct OpCounts {
  std::map<std::string, int64_t> called, all;
  int64_t called_total() const { return sum(called); }
  int64_t all_total() const { return sum(all); }
  // Calls that launch work on a device: not views, shape changes, no-op conversions or allocations.
  int64_t kernels() const {
    static const std::set<std::string> free = {"aten::narrow", "aten::slice", "aten::as_strided", "aten::view",
                                               "aten::permute", "aten::unsqueeze", "aten::squeeze", "aten::expand",
                                               "aten::select", "aten::transpose", "aten::empty"};
    int64_t n = 0;
    for (const auto& entry : called) n += free.count(entry.first) ? 0 : entry.second;
    return n;
  }
  static int64_t sum(const std::map<std::string, int64_t>& m) {
    int64_t n = 0;
    for (const auto& entry : m) n += entry.second;
    return n;
  }
};

inline thread_local OpCounts* active_counts = nullptr;
inline thread_local int op_depth = 0;

inline OpCounts count_ops(const std::function<void()>& fn) {
  OpCounts result;
  active_counts = &result;
  op_depth = 0;
  const at::CallbackHandle handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(
          [](const at::RecordFunction& f) -> std::unique_ptr<at::ObserverContext> {
            if (active_counts == nullptr) return nullptr;
            ++active_counts->all[f.name()];
            if (op_depth++ == 0) ++active_counts->called[f.name()];
            return nullptr;
          },
          [](const at::RecordFunction&, at::ObserverContext*) {
            if (active_counts != nullptr) --op_depth;
          })
          .scopes({at::RecordScope::FUNCTION}));
  fn();
  at::removeCallback(handle);
  active_counts = nullptr;
  return result;
}

// Both views of a batch in a fixed number of ATen ops, whatever the batch size, and no host reads.
// Values read back to the host: every item() (and every other read of one element) ends in
// aten::_local_scalar_dense, recorded once per read (item() itself is recorded around it).
inline int64_t host_reads(const OpCounts& ops) {
  const auto found = ops.all.find("aten::_local_scalar_dense");
  return found == ops.all.end() ? 0 : found->second;
}

}  // namespace hcl
