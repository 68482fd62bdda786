// The list of an image-folder split: (file, label) pairs and the class names, from either layout
//   root/<split>/<class>/.../<file>   torchvision's ImageFolder (Tiny ImageNet's train, ImageNet):
//                                     classes are the sub-folder names in byte order
//   root/<split>.txt                  a file list: one "relative/path [class]" per line (paths
//                                     relative to root; no class: unlabeled), for Tiny ImageNet's
//                                     val split and unlabeled sets; class names map to the classes
//                                     of root/train/ when that folder exists
// Files ending in .jpg, .jpeg or .png (any case) are images; hidden files are ignored; other files
// (Tiny ImageNet's box annotations, say) are left out and counted. A file named as an image that is
// not one is found when it is decoded (data/image_folder.h). Scanning a million
// files takes a while, so the index can be cached (the trainer keeps it in the run's folder) and is
// reused while every folder it listed (and the list file) keeps its size and modification time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hcl::data {

// What a folder or list file looked like when the index was built.
struct IndexStamp {
  std::string path;
  int64_t size = 0, mtime_ns = 0;
  bool operator==(const IndexStamp& o) const { return path == o.path && size == o.size && mtime_ns == o.mtime_ns; }
};

struct ImageIndex {
  std::string root;                  // absolute
  std::string split;
  std::vector<std::string> classes;  // label -> class name
  std::vector<std::string> files;    // relative to root
  std::vector<int64_t> labels;       // -1: unlabeled
  int64_t other_files = 0;           // files not named as images, left out
  std::string other_example;         // the first of them (relative to root)
  std::vector<IndexStamp> stamps;    // every folder scanned, or the list file
  bool from_cache = false;

  int64_t size() const { return static_cast<int64_t>(files.size()); }
  std::string path(int64_t i) const { return root + "/" + files[static_cast<size_t>(i)]; }
  // A hash of the listing (files and labels), the same for the same folder on every machine.
  uint64_t fingerprint() const;
};

// Throws hcl::Error naming the folder or file: neither layout present, an empty class folder, no
// images, an unreadable folder, a list line naming a missing file, a file not named as an image or
// an unknown class. A valid index cached in `cache_dir` ("": none) is used instead of a scan.
ImageIndex index_image_folder(const std::string& root, const std::string& split, const std::string& cache_dir);

// The index as text (the cache file's format) and back, for sharing one rank's index with the
// others. parse_index throws hcl::Error on a text that is not one; the result's from_cache is false.
std::string serialize_index(const ImageIndex& index);
ImageIndex parse_index(const std::string& text);

// Writes the index to `cache_dir` (created if needed) whole, then renamed into place, so that ranks
// writing at once never leave half a file; a failure is logged as a warning (the cache is an
// optimisation). Does nothing for an index that came from that cache.
void write_index_cache(const ImageIndex& index, const std::string& cache_dir);

}  // namespace hcl::data
