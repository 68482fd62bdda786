// This process's memory as the kernel counts it, for progress lines and benchmarks. Resident (RSS)
// counts every page mapped and present, shared or not: a dataset in node-shared memory counts in
// full in every rank's RSS. Proportional (PSS) divides each page by the processes that map it, so
// the PSS of all processes of a node adds up to the memory they really use.
#pragma once

namespace hcl {

// MiB resident (/proc/self/statm); 0 where unavailable.
double resident_mib();
// MiB proportional set size (Pss of /proc/self/smaps_rollup, Linux 4.14+); 0 where unavailable.
double proportional_mib();

}  // namespace hcl
