// Logging for every rank through Boost.Log: "2026-11-28 05:17:18.123 [rank 3/8] info: message".
// Rank 0 prints records at the chosen level and above; the other ranks print warnings and errors
// only; an optional per-rank file receives all of that rank's records at the chosen level.
#pragma once

#include <boost/log/trivial.hpp>

#include <string>

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

// Parses "trace", "debug", "info", "warning", "error" or "fatal"; throws hcl::Error otherwise.
Severity parse_severity(const std::string& name);

// Flushes every sink (call before exiting on an error).
void flush();

}  // namespace hcl::log

#define HCL_LOG(severity) BOOST_LOG_TRIVIAL(severity)
