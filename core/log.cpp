// Boost.Log set-up for hcl: one console sink filtered by rank, an optional per-rank file sink.
#include "core/log.h"

#include <boost/log/attributes/constant.hpp>
#include <boost/log/core.hpp>
#include <boost/log/expressions.hpp>
#include <boost/log/support/date_time.hpp>
#include <boost/log/utility/setup/common_attributes.hpp>
#include <boost/log/utility/setup/console.hpp>
#include <boost/log/utility/setup/file.hpp>

#include <array>
#include <iostream>

#include "core/check.h"

namespace hcl::log {
namespace logging = boost::log;
namespace expr = boost::log::expressions;

void init(const Options& options) {
  auto core = logging::core::get();
  core->remove_all_sinks();
  core->flush();
  const std::string rank_tag =
      "[rank " + std::to_string(options.rank) + "/" + std::to_string(options.world_size) + "]";
  // Replace (not add to) the attributes of an earlier init().
  auto attributes = core->get_global_attributes();
  attributes.erase("TimeStamp");
  attributes.erase("RankTag");
  attributes.insert("TimeStamp", logging::attributes::local_clock());
  attributes.insert("RankTag", logging::attributes::constant<std::string>(rank_tag));
  core->set_global_attributes(attributes);

  const auto format = expr::stream
                      << expr::format_date_time<boost::posix_time::ptime>("TimeStamp",
                                                                          "%Y-%m-%d %H:%M:%S.%f")
                      << " " << expr::attr<std::string>("RankTag") << " "
                      << logging::trivial::severity << ": " << expr::smessage;

  const Severity console_level =
      options.rank == 0 ? options.level : std::max(options.level, Severity::warning);
  auto console = logging::add_console_log(std::clog, logging::keywords::format = format,
                                          logging::keywords::auto_flush = true);
  console->set_filter(logging::trivial::severity >= console_level);

  if (!options.file_dir.empty()) {
    const std::string path = options.file_dir + "/log.rank" + std::to_string(options.rank) + ".txt";
    auto file = logging::add_file_log(logging::keywords::file_name = path,
                                      logging::keywords::open_mode = std::ios_base::app,
                                      logging::keywords::format = format,
                                      logging::keywords::auto_flush = true);
    file->set_filter(logging::trivial::severity >= options.level);
  }
}

void flush() { logging::core::get()->flush(); }

}  // namespace hcl::log
