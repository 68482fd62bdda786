// Enums with names: one table per enum, written once beside it, gives the name of a value, the
// value of a name (with the error message a person reads), and the list of choices for --help. The
// command line, config files, JSON, checkpoints and logs all go through these functions, so a name
// is spelled in one place.
//
//   namespace hcl::model { enum class Stem { Cifar, ImageNet }; }
//   template <>
//   struct hcl::EnumNames<hcl::model::Stem> {
//     static constexpr NamedValue<model::Stem> table[] = {{model::Stem::Cifar, "cifar", "3x3, no max-pool"},
//                                                         {model::Stem::ImageNet, "imagenet"}};
//   };
//
// A specialisation (not a function found by argument-dependent lookup) so that enums of other
// libraries (Boost.Log's severity) can have a table too. A table's entries may be any struct with
// members `value`, `name` and `note` (data/dataset.h's table of datasets is one).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/check.h"

namespace hcl {

template <typename E>
struct NamedValue {
  E value;
  const char* name;
  const char* note = "";  // shown in --help after the name, in parentheses ("" for none)
};

// Specialise with `static constexpr <entry> table[] = {...};` (see above).
template <typename E>
struct EnumNames;

template <typename E, typename = void>
struct is_named_enum : std::false_type {};
template <typename E>
struct is_named_enum<E, std::void_t<decltype(EnumNames<E>::table)>> : std::true_type {};
template <typename E>
inline constexpr bool is_named_enum_v = is_named_enum<E>::value;

// The name of `value`; a value missing from its table is a bug in hcl (InternalError).
template <typename E>
const char* name_of(E value) {
  for (const auto& entry : EnumNames<E>::table)
    if (entry.value == value) return entry.name;
  HCL_ASSERT(false, "value ", static_cast<long long>(value), " has no name in its table");
  return "";  // not reached
}

// The value named `text`, or nothing.
template <typename E>
std::optional<E> find_named(std::string_view text) {
  for (const auto& entry : EnumNames<E>::table)
    if (text == entry.name) return entry.value;
  return std::nullopt;
}

// "a, b or c"; with notes: "a (note), b or c".
template <typename E>
std::string choices_text(bool with_notes = false) {
  std::string text;
  const size_t n = std::size(EnumNames<E>::table);
  for (size_t i = 0; i < n; ++i) {
    const auto& entry = EnumNames<E>::table[i];
    text += i == 0 ? "" : i + 1 == n ? " or " : ", ";
    text += entry.name;
    if (with_notes && entry.note[0] != '\0') text += std::string(" (") + entry.note + ")";
  }
  return text;
}

// The --help text of an option: "lead: a (note), b or c", or the choices alone for an empty lead.
template <typename E>
std::string help_with_choices(const std::string& lead) {
  return lead.empty() ? choices_text<E>(true) : lead + ": " + choices_text<E>(true);
}

// The value named `text`; throws hcl::Error "--option: unknown value 'x' (expected one of a, b or
// c)". `option` is the option's name without dashes.
template <typename E>
E parse(std::string_view option, std::string_view text) {
  if (const std::optional<E> value = find_named<E>(text)) return *value;
  throw Error("--" + std::string(option) + ": unknown value '" + std::string(text) + "' (expected one of " +
              choices_text<E>() + ")");
}

}  // namespace hcl
