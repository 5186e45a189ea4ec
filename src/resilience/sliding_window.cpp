#include <athena/breaker.hpp>

namespace athena {

void SlidingWindow::record(SteadyTime completed_at, bool is_failure, bool is_slow) {
    m_calls.push_back(Call{completed_at, is_failure, is_slow});
    m_failures += is_failure ? 1 : 0;
    m_slow += is_slow ? 1 : 0;
}

void SlidingWindow::expire(SteadyTime now) {
    // Completion times rise along the deque, so the calls that left the window are a prefix.
    while (!m_calls.empty() && now - m_calls.front().completed_at >= m_length) {
        m_failures -= m_calls.front().is_failure ? 1 : 0;
        m_slow -= m_calls.front().is_slow ? 1 : 0;
        m_calls.pop_front();
    }
}

void SlidingWindow::clear() {
    m_calls.clear();
    m_failures = 0;
    m_slow = 0;
}

WindowSummary SlidingWindow::summary(SteadyTime now, std::uint32_t overdue_in_flight) {
    expire(now);

    WindowSummary summary;
    summary.calls = static_cast<std::uint32_t>(m_calls.size()) + overdue_in_flight;
    summary.failures = m_failures;
    summary.slow = m_slow + overdue_in_flight;
    summary.overdue_in_flight = overdue_in_flight;
    return summary;
}

} // namespace athena
