// Path checks for user input: UTF-8, length limits, and file-system errors in one line.
#include "core/paths.h"

#include <climits>
#include <cstdio>

#include "core/check.h"

namespace hcl {
namespace {

// The offset of the first byte that is not part of a valid UTF-8 sequence, or npos.
size_t first_invalid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = p[i];
    const size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > s.size()) return i;
    for (size_t k = 1; k < length; ++k)
      if ((p[i + k] >> 6) != 0x2) return i;
    // Overlong forms, surrogates and code points past U+10FFFF, as JSON readers refuse them.
    const bool bad = (length == 2 && c < 0xC2) || (length == 3 && c == 0xE0 && p[i + 1] < 0xA0) ||
                     (length == 3 && c == 0xED && p[i + 1] >= 0xA0) ||
                     (length == 4 && c == 0xF0 && p[i + 1] < 0x90) || (length == 4 && (c > 0xF4 || (c == 0xF4 && p[i + 1] >= 0x90)));
    if (bad) return i;
    i += length;
  }
  return std::string::npos;
}

}  // namespace

void require_usable_path(const std::string& option, const std::string& path) {
  if (const size_t at = first_invalid_utf8(path); at != std::string::npos) {
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02x", static_cast<unsigned char>(path[at]));
    throw Error(detail::concat(option, ": the path is not valid UTF-8 (byte ", at, " is ", byte,
                               "); hcl stores paths as UTF-8 text in config.json and checkpoints"));
  }
  HCL_REQUIRE(path.size() < PATH_MAX, option, ": the path is too long (", path.size(), " bytes; at most ",
              PATH_MAX - 1, "): '", path.substr(0, 40), "...'");
  for (const auto& part : std::filesystem::path(path))
    HCL_REQUIRE(part.native().size() <= NAME_MAX, option, ": a name in the path is too long (",
                part.native().size(), " bytes; at most ", NAME_MAX, "): '", part.native().substr(0, 40), "...'");
}

std::string describe(const std::filesystem::filesystem_error& e) {
  // (concat rather than operator+: GCC 12 warns of a bogus overflow in C++20 mode)
  if (e.path1().empty()) return detail::concat("cannot read: ", e.code().message());
  return detail::concat("cannot read '", e.path1().string(), "': ", e.code().message());
}

}  // namespace hcl
