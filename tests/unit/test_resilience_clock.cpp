#include <athena/clock.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <thread>

using namespace std::chrono_literals;

TEST_CASE("ManualClock: time moves only on advance") {
    athena::ManualClock clock;
    const athena::SteadyTime start = clock.now();

    SUBCASE("no advance keeps the time") {
        CHECK(clock.now() == start);
    }
    SUBCASE("advance adds the step") {
        clock.advance(1500ms);
        CHECK(clock.now() - start == 1500ms);
        clock.advance(1ms);
        CHECK(clock.now() - start == 1501ms);
    }
    SUBCASE("negative step is ignored") {
        clock.advance(-10ms);
        CHECK(clock.now() == start);
    }
}

TEST_CASE("ManualClock: watches run on advance") {
    athena::ManualClock clock;
    int calls = 0;

    SUBCASE("callback runs once per advance") {
        const athena::ClockWatch watch = clock.watch([&calls] { ++calls; });
        clock.advance(1ms);
        clock.advance(0ms);
        CHECK(calls == 2);
    }
    SUBCASE("destroyed watch stops the callback") {
        {
            const athena::ClockWatch watch = clock.watch([&calls] { ++calls; });
            clock.advance(1ms);
        }
        clock.advance(1ms);
        CHECK(calls == 1);
    }
    SUBCASE("moved watch stays registered once") {
        athena::ClockWatch first = clock.watch([&calls] { ++calls; });
        athena::ClockWatch second = std::move(first);
        clock.advance(1ms);
        CHECK(calls == 1);
        second = athena::ClockWatch{};
        clock.advance(1ms);
        CHECK(calls == 1);
    }
}

TEST_CASE("ManualClock: advance wakes a waiter past its deadline") {
    auto clock = std::make_shared<athena::ManualClock>();
    std::mutex mutex;
    std::condition_variable cv;
    const athena::SteadyTime deadline = clock->now() + 100ms;
    const athena::ClockWatch watch = clock->watch([&] {
        std::lock_guard guard(mutex);
        cv.notify_all();
    });

    std::thread waiter([&] {
        std::unique_lock lock(mutex);
        while (clock->now() < deadline) {
            clock->wait_until(lock, cv, deadline);
        }
    });
    clock->advance(50ms);
    clock->advance(50ms);
    waiter.join();

    CHECK(clock->now() >= deadline);
}

TEST_CASE("SystemClock: now never goes backwards") {
    const auto clock = athena::system_clock();

    const athena::SteadyTime first = clock->now();
    const athena::SteadyTime second = clock->now();

    CHECK(second >= first);
    CHECK(athena::system_clock() == clock);
}
