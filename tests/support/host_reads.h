// Counting the ATen ops a piece of work runs (a RecordFunction observer on this thread), and the
// values it reads back to the host: the CPU proxy for a host synchronisation on a GPU.
#pragma once

#include <ATen/record_function.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace hcl::test {

inline thread_local std::map<std::string, int64_t>* counting_ops = nullptr;

// ATen ops by name that `work` runs on this thread (every depth).
inline std::map<std::string, int64_t> ops_of(const std::function<void()>& work) {
  std::map<std::string, int64_t> counts;
  counting_ops = &counts;
  const at::CallbackHandle handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback([](const at::RecordFunction& f) -> std::unique_ptr<at::ObserverContext> {
        if (counting_ops != nullptr) ++(*counting_ops)[f.name()];
        return nullptr;
      }).scopes({at::RecordScope::FUNCTION}));
  work();
  at::removeCallback(handle);
  counting_ops = nullptr;
  return counts;
}

// Values read back to the host: every item() (and every other read of one element) ends in
// aten::_local_scalar_dense, recorded once per read (item() itself is recorded around it).
inline int64_t host_reads(const std::map<std::string, int64_t>& ops) {
  const auto found = ops.find("aten::_local_scalar_dense");
  return found == ops.end() ? 0 : found->second;
}

}  // namespace hcl::test
