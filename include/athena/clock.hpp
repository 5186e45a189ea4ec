// Monotonic time for the resilience primitives. The breaker and the bulkhead read time and
// wait only through a Clock, so tests drive them with a ManualClock and never sleep.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

namespace athena {

using SteadyTime = std::chrono::steady_clock::time_point;

class Clock;

// Registration of a callback that a clock runs after it advances (see Clock::watch).
// Destroying the handle removes the callback and waits until a running call of it returns.
class ClockWatch {
public:
    ClockWatch() = default;
    ClockWatch(Clock* clock, std::uint64_t id) : m_clock(clock), m_id(id) {}
    ClockWatch(ClockWatch&& other) noexcept;
    ClockWatch& operator=(ClockWatch&& other) noexcept;
    ClockWatch(const ClockWatch&) = delete;
    ClockWatch& operator=(const ClockWatch&) = delete;
    ~ClockWatch();

private:
    void reset();

    Clock* m_clock = nullptr;
    std::uint64_t m_id = 0;
};

class Clock {
public:
    virtual ~Clock() = default;

    // Current time. Never goes backwards. Thread-safe.
    virtual SteadyTime now() const = 0;

    // Blocks on `cv` (with `lock` held, as std::condition_variable::wait_until) until it is
    // notified, until `deadline` on this clock passes, or spuriously, so callers wait in a
    // loop that re-checks their condition. A ManualClock does not wake waiters when its time
    // passes a deadline: an object that waits also registers a watch whose callback notifies
    // its waiters.
    virtual void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                            SteadyTime deadline) const = 0;

    // Registers `on_advance`, which the clock calls after each step of simulated time. The
    // system clock never calls it. The callback runs on the thread that advances the clock
    // and must not advance the clock or add or remove watches itself.
    virtual ClockWatch watch(std::function<void()> on_advance);

private:
    friend class ClockWatch;
    virtual void unwatch(std::uint64_t id);
};

// std::chrono::steady_clock. Thread-safe.
class SystemClock final : public Clock {
public:
    SteadyTime now() const override;
    void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                    SteadyTime deadline) const override;
};

// A clock for tests: time starts at `start` and moves only when advance() is called, which
// then runs every watch callback, so waiters whose deadline has passed wake up. Thread-safe.
class ManualClock final : public Clock {
public:
    explicit ManualClock(SteadyTime start = SteadyTime{} + std::chrono::hours(1));

    SteadyTime now() const override;
    void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                    SteadyTime deadline) const override;
    ClockWatch watch(std::function<void()> on_advance) override;

    // Moves time forward by `step` (negative steps are ignored), then runs the watch callbacks
    // in registration order on the calling thread.
    void advance(std::chrono::milliseconds step);

private:
    void unwatch(std::uint64_t id) override;

    mutable std::mutex m_time_mutex;
    SteadyTime m_now;

    // Held while callbacks run, so unwatch() waits for a running callback to return.
    std::mutex m_watch_mutex;
    std::map<std::uint64_t, std::function<void()>> m_watches;
    std::uint64_t m_next_watch_id = 1;
};

// The process-wide SystemClock, the default clock of every resilience primitive.
std::shared_ptr<Clock> system_clock();

} // namespace athena
