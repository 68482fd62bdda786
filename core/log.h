// Logging for every rank through Boost.Log: "2026-11-28 05:17:18.123 [rank 3/8] info: message".
// Rank 0 prints records at the chosen level and above; the other ranks print warnings and errors
// only; an optional per-rank file receives all of that rank's records at the chosen level.
#pragma once

#include <boost/log/trivial.hpp>

#include <string>

#include "core/named_enum.h"

namespace hcl::log {

using Severity = boost::log::trivial::severity_level;

struct Options {
  int rank = 0;
  int world_size = 1;
  Severity level = Severity::info;
  // Folder for per-rank files "<dir>/log.rank<r>.txt"; empty: console only.
  std::string file_dir;
};

// Sets up the console (and file) sinks; calling it again replaces the previous set-up.
void init(const Options& options);

// Flushes every sink (call before exiting on an error).
void flush();

}  // namespace hcl::log

// The level names of --log-level (Boost.Log's own names).
template <>
struct hcl::EnumNames<hcl::log::Severity> {
  static constexpr NamedValue<log::Severity> table[] = {
      {log::Severity::trace, "trace"},     {log::Severity::debug, "debug"}, {log::Severity::info, "info"},
      {log::Severity::warning, "warning"}, {log::Severity::error, "error"}, {log::Severity::fatal, "fatal"},
  };
};

#define HCL_LOG(severity) BOOST_LOG_TRIVIAL(severity)
