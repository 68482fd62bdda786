// Checks of paths given by the user (options, config files), made before anything touches the
// file system: a path must be valid UTF-8 (config.json, checkpoints and result files store paths as
// JSON text) and fit the system's limits; and file-system errors as one line naming the path.
#pragma once

#include <filesystem>
#include <string>

namespace hcl {

// Throws hcl::Error "<option>: ..." when `path` is not valid UTF-8, is longer than PATH_MAX - 1
// bytes or has a name longer than NAME_MAX bytes. An empty path passes (options where "" means a
// default).
void require_usable_path(const std::string& option, const std::string& path);

// "cannot read '<path>': <reason>" for a file-system error (a symlink loop, a folder that cannot
// be read, a name too long), without the library's "filesystem error: status:" wording.
std::string describe(const std::filesystem::filesystem_error& e);

}  // namespace hcl
