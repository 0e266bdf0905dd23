#include "background_worker.hpp"

#include <utility>

namespace nlb {

BackgroundWorker::~BackgroundWorker() {
    {
        std::unique_lock lock(mutex_);
        done_.wait(lock, [&] { return !pending_ || finished_; });
        quit_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable())
        thread_.join();
}

void BackgroundWorker::submit(std::function<void()> job) {
    std::unique_lock lock(mutex_);
    if (!thread_.joinable())
        thread_ = std::thread([this] { serve(); }); // throws std::system_error: nothing pending
    job_ = std::move(job);
    pending_ = true;
    finished_ = false;
    lock.unlock();
    wake_.notify_one();
}

bool BackgroundWorker::pending() const {
    std::lock_guard lock(mutex_);
    return pending_;
}

bool BackgroundWorker::ready() const {
    std::lock_guard lock(mutex_);
    return pending_ && finished_;
}

void BackgroundWorker::collect() {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return !pending_ || finished_; });
    pending_ = false;
    finished_ = false;
}

void BackgroundWorker::serve() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return quit_ || job_; });
        if (!job_)
            return; // quit_, and no job left: the destructor waited for the last one
        std::function<void()> job = std::move(job_);
        job_ = nullptr;
        lock.unlock();
        job(); // the caller's jobs throw nothing (ConnectionTracking::run)
        lock.lock();
        finished_ = true;
        done_.notify_all();
    }
}

} // namespace nlb
