// A fixed pool of threads that runs the iterations of parallel_for calls: the decode workers of
// image-folder datasets. Several callers may run parallel_for at once (the prefetch thread and an
// evaluation, say); each waits for its own iterations only. The first exception thrown by an
// iteration is rethrown by its parallel_for once every iteration of the call has ended, so a
// failing batch never leaves work running on memory the caller is about to free.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace hcl::data {

class WorkerPool {
 public:
  // threads >= 1.
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs fn(0) .. fn(n - 1) on the pool's threads and returns when all have ended.
  void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);

  int threads() const { return static_cast<int>(threads_.size()); }

 private:
  struct Call;
  void work();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Call>> calls_;  // calls with iterations not yet claimed
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace hcl::data
