// For tests of shared memory: the proportional set size of one mapping of this process, read from
// /proc/self/smaps (a page mapped by n processes counts 1/n in each), and the file it maps.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace hcl::test {

// The Pss (KiB) of this process's mapping that starts at `address`; -1 if no mapping starts there.
inline int64_t mapping_pss_kib(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  std::ostringstream start;
  start << std::hex << reinterpret_cast<uintptr_t>(address) << "-";
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    if (line.substr(0, line.find(' ')).find('-') != std::string::npos)  // a mapping's header line
      inside = line.rfind(start.str(), 0) == 0;
    else if (inside && line.rfind("Pss:", 0) == 0)
      return std::stoll(line.substr(4));
  }
  return -1;
}

// The file column of this process's mapping that starts at `address` ("" if none starts there).
inline std::string mapping_file(const void* address) {
  std::ifstream maps("/proc/self/maps");
  std::ostringstream start;
  start << std::hex << reinterpret_cast<uintptr_t>(address) << "-";
  for (std::string line; std::getline(maps, line);) {
    if (line.rfind(start.str(), 0) != 0) continue;
    std::istringstream fields(line);
    std::string range, perms, offset, device, inode, file;
    fields >> range >> perms >> offset >> device >> inode;
    std::getline(fields >> std::ws, file);
    return file;
  }
  return "";
}

}  // namespace hcl::test
