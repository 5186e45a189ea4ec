#include <athena/clock.hpp>

#include <utility>

namespace athena {

ClockWatch::ClockWatch(ClockWatch&& other) noexcept
    : m_clock(std::exchange(other.m_clock, nullptr)), m_id(std::exchange(other.m_id, 0)) {}

ClockWatch& ClockWatch::operator=(ClockWatch&& other) noexcept {
    if (this != &other) {
        reset();
        m_clock = std::exchange(other.m_clock, nullptr);
        m_id = std::exchange(other.m_id, 0);
    }
    return *this;
}

ClockWatch::~ClockWatch() {
    reset();
}

void ClockWatch::reset() {
    if (m_clock != nullptr) {
        m_clock->unwatch(m_id);
        m_clock = nullptr;
    }
}

ClockWatch Clock::watch(std::function<void()>) {
    return ClockWatch{};
}

void Clock::unwatch(std::uint64_t) {}

SteadyTime SystemClock::now() const {
    return std::chrono::steady_clock::now();
}

void SystemClock::wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                             SteadyTime deadline) const {
    cv.wait_until(lock, deadline);
}

ManualClock::ManualClock(SteadyTime start) : m_now(start) {}

SteadyTime ManualClock::now() const {
    std::lock_guard guard(m_time_mutex);
    return m_now;
}

// Simulated time passes only in advance(), whose watch callbacks notify the waiters, so a
// plain wait is enough here and no real time elapses in tests.
void ManualClock::wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                             SteadyTime) const {
    cv.wait(lock);
}

ClockWatch ManualClock::watch(std::function<void()> on_advance) {
    std::lock_guard guard(m_watch_mutex);
    const std::uint64_t id = m_next_watch_id++;
    m_watches.emplace(id, std::move(on_advance));
    return ClockWatch{this, id};
}

void ManualClock::unwatch(std::uint64_t id) {
    std::lock_guard guard(m_watch_mutex);
    m_watches.erase(id);
}

void ManualClock::advance(std::chrono::milliseconds step) {
    if (step.count() > 0) {
        std::lock_guard guard(m_time_mutex);
        m_now += step;
    }

    // The callbacks take the locks of the objects that registered them. Those objects never
    // hold their own lock while they add or remove a watch, so the two lock orders cannot
    // cross.
    std::lock_guard guard(m_watch_mutex);
    for (auto& [id, on_advance] : m_watches) {
        on_advance();
    }
}

std::shared_ptr<Clock> system_clock() {
    static const std::shared_ptr<Clock> clock = std::make_shared<SystemClock>();
    return clock;
}

} // namespace athena
