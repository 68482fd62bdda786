// WorkerPool: a queue of parallel_for calls whose iterations the threads claim one at a time.
#include "data/worker_pool.h"

#include <exception>

#include "core/check.h"

namespace hcl::data {

struct WorkerPool::Call {
  const std::function<void(int64_t)>* fn = nullptr;
  int64_t n = 0, next = 0, done = 0;  // iterations: total, claimed, ended (guarded by the mutex)
  std::exception_ptr error;
  std::condition_variable finished;
};

WorkerPool::WorkerPool(int threads) {
  HCL_REQUIRE(threads >= 1, "decode workers: need at least 1 thread, got ", threads);
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void WorkerPool::parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  auto call = std::make_shared<Call>();
  call->fn = &fn;
  call->n = n;
  std::unique_lock<std::mutex> lock(mutex_);
  calls_.push_back(call);
  wake_.notify_all();
  call->finished.wait(lock, [&] { return call->done == call->n; });
  if (call->error) std::rethrow_exception(call->error);
}

void WorkerPool::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !calls_.empty(); });
    if (calls_.empty()) return;  // stopping, nothing left
    const std::shared_ptr<Call> call = calls_.front();
    const int64_t i = call->next++;
    if (call->next == call->n) calls_.pop_front();  // every iteration claimed
    const bool skip = call->error != nullptr;       // a failed call ends its remaining iterations at once
    lock.unlock();
    std::exception_ptr error;
    if (!skip) {
      try {
        (*call->fn)(i);
      } catch (...) {
        error = std::current_exception();
      }
    }
    lock.lock();
    if (error && !call->error) call->error = error;
    if (++call->done == call->n) call->finished.notify_all();
  }
}

}  // namespace hcl::data
