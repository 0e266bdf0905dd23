// One thread for the agent's background work, made at the first job and kept: the loop hands
// it a job and later collects it, and never waits for a thread to be made or to exit. A thread
// per job (std::async) did both: on the 64-host bed the loop waited up to 250 ms in a job's
// collection for its thread to be scheduled and exit (docs/agent.md, "Running").
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace nlb {

class BackgroundWorker {
  public:
    BackgroundWorker() = default;
    BackgroundWorker(const BackgroundWorker&) = delete;
    BackgroundWorker& operator=(const BackgroundWorker&) = delete;
    // Waits for a job under way, then ends the thread.
    ~BackgroundWorker();

    // Hands `job` to the thread, made now if there is none (std::system_error if it cannot
    // be: nothing is pending then). Only while nothing is pending.
    void submit(std::function<void()> job);
    // Submitted and not yet collected.
    bool pending() const;
    // Pending and finished: collect() will not wait.
    bool ready() const;
    // Waits until the pending job has finished; then nothing is pending.
    void collect();

  private:
    void serve();

    mutable std::mutex mutex_;
    std::condition_variable wake_; // to the thread: a job, or the end
    std::condition_variable done_; // to collect(): the job finished
    std::function<void()> job_;    // set: the thread has it to run
    bool pending_ = false;
    bool finished_ = false;
    bool quit_ = false;
    std::thread thread_;
};

} // namespace nlb
