// The agent's background thread: one thread for every job, jobs handed over and collected
// without the loop waiting for a thread to start or exit.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "background_worker.hpp"

using namespace nlb;
using namespace std::chrono_literals;

namespace {

// Polls `done` for up to 10 s (a job on a busy machine): whether it came.
template <class F> bool eventually(F done) {
    for (int i = 0; i < 1000; ++i) {
        if (done())
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return done();
}

} // namespace

TEST_CASE("background worker: a job is pending until collected, ready once it ran") {
    BackgroundWorker worker;
    CHECK_FALSE(worker.pending());
    CHECK_FALSE(worker.ready());

    std::promise<void> go;
    std::shared_future<void> gate = go.get_future().share();
    std::atomic<bool> ran{false};
    worker.submit([gate, &ran] {
        gate.wait();
        ran = true;
    });
    CHECK(worker.pending());
    std::this_thread::sleep_for(20ms);
    CHECK_FALSE(worker.ready()); // held at the gate
    go.set_value();
    REQUIRE(eventually([&] { return worker.ready(); }));
    CHECK(ran);
    CHECK(worker.pending()); // until collected
    worker.collect();
    CHECK_FALSE(worker.pending());
    CHECK_FALSE(worker.ready());
}

TEST_CASE("background worker: every job runs on the same thread, not the caller's") {
    BackgroundWorker worker;
    std::thread::id first, second;
    worker.submit([&] { first = std::this_thread::get_id(); });
    worker.collect(); // waits for it
    worker.submit([&] { second = std::this_thread::get_id(); });
    worker.collect();
    CHECK(first != std::thread::id{});
    CHECK(first == second);
    CHECK(first != std::this_thread::get_id());
}

TEST_CASE("background worker: collect() and the destructor wait for a job under way") {
    std::atomic<int> finished{0};
    {
        BackgroundWorker worker;
        worker.submit([&] {
            std::this_thread::sleep_for(50ms);
            ++finished;
        });
        worker.collect();
        CHECK(finished == 1);
        worker.submit([&] {
            std::this_thread::sleep_for(50ms);
            ++finished;
        });
    } // not collected: the destructor waits for it
    CHECK(finished == 2);
}
