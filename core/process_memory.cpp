// Reads this process's RSS and PSS from /proc (see process_memory.h).
#include "core/process_memory.h"

#include <unistd.h>

#include <fstream>
#include <string>

namespace hcl {

double resident_mib() {
  std::ifstream statm("/proc/self/statm");
  long long size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

double proportional_mib() {
  std::ifstream rollup("/proc/self/smaps_rollup");
  std::string key;
  double kib = 0;
  while (rollup >> key) {
    if (key == "Pss:" && rollup >> kib) return kib / 1024.0;
    rollup.ignore(1 << 12, '\n');
  }
  return 0;
}

}  // namespace hcl
