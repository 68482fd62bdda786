// Image-folder and file-list indexes, and their cache (a text file checked against folder stamps).
#include "data/image_index.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/atomic_file.h"
#include "core/check.h"
#include "core/log.h"
#include "core/paths.h"
#include "data/sampler.h"

namespace hcl::data {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCacheMagic = "hcl-image-index 1";

IndexStamp stamp_of(const std::string& path) {
  struct stat st {};
  HCL_REQUIRE(::stat(path.c_str(), &st) == 0, "cannot read '", path, "': ", std::strerror(errno));
  return {path, static_cast<int64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

bool is_image_name(const std::string& name) {
  std::string ext = fs::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

bool is_hidden(const fs::path& p) { return !p.filename().empty() && p.filename().string()[0] == '.'; }

// Sub-folder names of `dir` in byte order (hidden ones left out).
std::vector<std::string> class_folders(const std::string& dir) {
  std::vector<std::string> names;
  try {
    for (const fs::directory_entry& e : fs::directory_iterator(dir))
      if (e.is_directory() && !is_hidden(e.path())) names.push_back(e.path().filename().string());
  } catch (const fs::filesystem_error& e) {
    throw Error(describe(e));
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The index being built (its stamps gathered as the scan goes).
struct Built {
  ImageIndex index;
};

bool is_special_file(const fs::directory_entry& entry) {
  std::error_code ec;
  const fs::file_type type = entry.status(ec).type();
  return type == fs::file_type::fifo || type == fs::file_type::socket || type == fs::file_type::block ||
         type == fs::file_type::character;
}

void check_name(const std::string& relative) {
  HCL_REQUIRE(relative.find('\n') == std::string::npos && relative.find('\r') == std::string::npos,
              "'", relative, "': file names with line breaks are not supported");
}

// Every image under root/split/<class>/, recursively, in byte order within each class.
void scan_class(Built& b, const std::string& class_dir, int64_t label) {
  const size_t before = b.index.files.size();
  std::vector<std::string> files;
  try {
    b.index.stamps.push_back(stamp_of(class_dir));
    for (auto it = fs::recursive_directory_iterator(class_dir); it != fs::recursive_directory_iterator(); ++it) {
      const fs::path& p = it->path();
      if (is_hidden(p)) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_directory()) {
        b.index.stamps.push_back(stamp_of(p.string()));
        continue;
      }
      const std::string relative = fs::relative(p, b.index.root).string();
      // No special files: a FIFO, device or socket named *.png would block the rank that opens it.
      // (A dangling link stays: reading it is the error that names it, or a skip with the others.)
      if (is_image_name(p.filename().string()) && !is_special_file(*it)) {
        check_name(relative);
        files.push_back(relative);
      } else {  // Tiny ImageNet keeps a <class>_boxes.txt beside its images, for one; or not a file
        if (b.index.other_files++ == 0) b.index.other_example = relative;
      }
    }
  } catch (const fs::filesystem_error& e) {
    throw Error(describe(e));
  }
  std::sort(files.begin(), files.end());
  for (std::string& f : files) b.index.files.push_back(std::move(f)), b.index.labels.push_back(label);
  HCL_REQUIRE(b.index.files.size() > before, class_dir, ": empty class folder (no .jpg, .jpeg or .png images)");
}

Built scan_folder_layout(const std::string& root, const std::string& split) {
  Built b;
  b.index.root = root;
  b.index.split = split;
  const std::string dir = root + "/" + split;
  b.index.stamps.push_back(stamp_of(dir));
  b.index.classes = class_folders(dir);
  HCL_REQUIRE(!b.index.classes.empty(), dir, ": no class folders (expected ", dir, "/<class>/<image>)");
  for (size_t c = 0; c < b.index.classes.size(); ++c)
    scan_class(b, dir + "/" + b.index.classes[c], static_cast<int64_t>(c));
  return b;
}

// Lines "relative/path [class]"; '#' starts a comment line.
Built read_list_layout(const std::string& root, const std::string& split, const std::string& list) {
  Built b;
  b.index.root = root;
  b.index.split = split;
  b.index.stamps.push_back(stamp_of(list));
  std::map<std::string, int64_t> label_of;
  const bool train_classes = fs::is_directory(root + "/train");
  if (train_classes) {
    b.index.stamps.push_back(stamp_of(root + "/train"));
    b.index.classes = class_folders(root + "/train");
    for (size_t c = 0; c < b.index.classes.size(); ++c) label_of[b.index.classes[c]] = static_cast<int64_t>(c);
  }
  std::ifstream in(list);
  HCL_REQUIRE(in.good(), "cannot read '", list, "': ", std::strerror(errno));
  std::string line, path, name;
  std::vector<std::pair<std::string, std::string>> entries;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    if (!(fields >> path) || path[0] == '#') continue;
    name.clear();
    fields >> name;
    HCL_REQUIRE(fs::is_regular_file(root + "/" + path), list, ":", number, ": no such file '", root, "/", path, "'");
    HCL_REQUIRE(is_image_name(path), list, ":", number, ": '", path, "' is not an image file (.jpg, .jpeg or .png)");
    if (!name.empty() && !train_classes && !label_of.count(name)) label_of.emplace(name, 0);
    HCL_REQUIRE(name.empty() || label_of.count(name), list, ":", number, ": class '", name, "' is not a folder of ",
                root, "/train");
    entries.emplace_back(path, name);
  }
  HCL_REQUIRE(!entries.empty(), list, ": no images listed");
  if (!train_classes) {  // classes: the names the list uses, in byte order
    int64_t next = 0;
    for (auto& [n, label] : label_of) label = next++, b.index.classes.push_back(n);
  }
  for (auto& [p, n] : entries) {
    b.index.files.push_back(p);
    b.index.labels.push_back(n.empty() ? -1 : label_of.at(n));
  }
  return b;
}

std::string cache_file(const std::string& cache_dir, const std::string& split) {
  return cache_dir + "/" + split + ".index";
}

void write_cache(const ImageIndex& index, const std::string& path) {
  // Written whole, then renamed: a reader never sees half an index (ranks may write it at once,
  // each through its own temporary file).
  try {
    write_file_atomically(path, serialize_index(index), {"image index cache ", ".tmp." + std::to_string(::getpid())});
  } catch (const Error& e) {
    HCL_LOG(warning) << e.what() << "; the next run scans the folder again";
  }
}

// The text of serialize_index back into `index`; false where it is not such a text.
bool parse_text(std::istream& in, ImageIndex& index) {
  std::string line, value;
  auto field = [&](const char* want) {
    if (!std::getline(in, line)) return false;
    const size_t tab = line.find('\t');
    if (tab == std::string::npos || line.compare(0, tab, want) != 0) return false;
    value = line.substr(tab + 1);
    return true;
  };
  if (!std::getline(in, line) || line != kCacheMagic) return false;
  if (!field("root")) return false;
  index.root = value;
  if (!field("split")) return false;
  index.split = value;
  if (!field("other")) return false;
  const size_t tab = value.find('\t');
  if (tab == std::string::npos) return false;
  index.other_files = std::stoll(value.substr(0, tab));
  index.other_example = value.substr(tab + 1);
  if (!field("stamps")) return false;
  for (int64_t n = std::stoll(value); n > 0; --n) {
    IndexStamp s;
    if (!(in >> s.size >> s.mtime_ns) || in.get() != '\t' || !std::getline(in, s.path)) return false;
    index.stamps.push_back(s);
  }
  if (!field("classes")) return false;
  index.classes.resize(static_cast<size_t>(std::stoll(value)));
  for (std::string& c : index.classes)
    if (!std::getline(in, c)) return false;
  if (!field("files")) return false;
  const auto n = static_cast<size_t>(std::stoll(value));
  index.files.resize(n);
  index.labels.resize(n);
  for (size_t i = 0; i < n; ++i)
    if (!(in >> index.labels[i]) || in.get() != '\t' || !std::getline(in, index.files[i])) return false;
  return true;
}

// The cached index if it is for this root and split and nothing it listed has changed.
bool read_cache(const std::string& path, const std::string& root, const std::string& split, ImageIndex& index) {
  std::ifstream in(path);
  if (!in.good() || !parse_text(in, index) || index.root != root || index.split != split) return false;
  for (const IndexStamp& s : index.stamps) {
    struct stat st {};
    if (::stat(s.path.c_str(), &st) != 0 || !(stamp_of(s.path) == s)) return false;
  }
  index.from_cache = true;
  return true;
}

}  // namespace

uint64_t ImageIndex::fingerprint() const {
  uint64_t h = mix64(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    h = mix64(h ^ std::hash<std::string>{}(files[i]));
    h = mix64(h ^ static_cast<uint64_t>(labels[i]));
  }
  return h;
}

std::string serialize_index(const ImageIndex& index) {
  std::ostringstream out;
  out << kCacheMagic << "\nroot\t" << index.root << "\nsplit\t" << index.split << "\nother\t"
      << index.other_files << "\t" << index.other_example << "\nstamps\t" << index.stamps.size() << "\n";
  for (const IndexStamp& s : index.stamps) out << s.size << "\t" << s.mtime_ns << "\t" << s.path << "\n";
  out << "classes\t" << index.classes.size() << "\n";
  for (const std::string& c : index.classes) out << c << "\n";
  out << "files\t" << index.files.size() << "\n";
  for (size_t i = 0; i < index.files.size(); ++i) out << index.labels[i] << "\t" << index.files[i] << "\n";
  return out.str();
}

ImageIndex parse_index(const std::string& text) {
  std::istringstream in(text);
  ImageIndex index;
  bool ok = false;
  try {
    ok = parse_text(in, index);
  } catch (const std::exception&) {  // a number that does not parse
  }
  HCL_REQUIRE(ok, "image index: not the text of an image index (", text.size(), " bytes)");
  return index;
}

ImageIndex index_image_folder(const std::string& root_dir, const std::string& split, const std::string& cache_dir) {
  std::string root;
  try {
    HCL_REQUIRE(fs::is_directory(root_dir), root_dir, ": no such folder (expected an image folder root with ",
                split, "/<class>/<image> or ", split, ".txt)");
    root = fs::canonical(root_dir).string();
  } catch (const fs::filesystem_error& e) {
    throw Error(describe(e));
  }
  ImageIndex cached;
  if (!cache_dir.empty()) {
    try {
      if (read_cache(cache_file(cache_dir, split), root, split, cached)) return cached;
    } catch (const std::exception&) {  // an unreadable or garbled cache is rebuilt
    }
  }
  const std::string list = root + "/" + split + ".txt";
  Built b;
  if (fs::is_directory(root + "/" + split))
    b = scan_folder_layout(root, split);
  else if (fs::is_regular_file(list))
    b = read_list_layout(root, split, list);
  else
    throw Error(detail::concat(root, ": split '", split, "' not found (expected the folder ", root, "/", split,
                               "/<class>/<image> or the list ", list, ")"));
  if (!cache_dir.empty() && fs::exists(cache_file(cache_dir, split)))
    HCL_LOG(info) << "image index: " << cache_file(cache_dir, split) << " is out of date (" << root << "/" << split
                  << " changed, or it lists another folder): rescanned";
  return std::move(b.index);
}

void write_index_cache(const ImageIndex& index, const std::string& cache_dir) {
  if (index.from_cache || cache_dir.empty()) return;
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  write_cache(index, cache_file(cache_dir, index.split));
}

}  // namespace hcl::data
