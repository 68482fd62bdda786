// A Boost.Program_options value for an enum with a name table (core/named_enum.h): given and shown
// by name, parsed when the options are notified, with the error of hcl::parse ("--option: unknown
// value 'x' (expected one of a, b or c)"), which names the option as Boost's own messages cannot
// from inside a validator. Header-only: for the programs that link Boost.Program_options.
#pragma once

#include <boost/program_options.hpp>
#include <string>

#include "core/named_enum.h"

namespace hcl {

template <typename E>
boost::program_options::typed_value<std::string>* enum_option(E* field, const std::string& option) {
  return boost::program_options::value<std::string>()
      ->default_value(name_of(*field))
      ->notifier([field, option](const std::string& text) { *field = parse<E>(option, text); });
}

}  // namespace hcl
