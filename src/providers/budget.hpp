// The run's spending limit (--max-cost): requests reserve their worst-case cost before they
// start and settle the real cost when they end.
#pragma once

#include <optional>

namespace athena::providers {

enum class BudgetDecision {
    go,   // reserved: start the request
    wait, // would pass the limit while requests are in flight: ask again after one ends
    stop, // would pass the limit even with nothing in flight: no further request this run
};

// Loop-thread only; not thread-safe.
class CostBudget {
public:
    explicit CostBudget(std::optional<double> limit_usd) : m_limit_usd(limit_usd) {}

    // Reserves `estimate_usd` when spent + reserved + estimate stays within the limit. Once
    // it has returned stop, it always does.
    BudgetDecision reserve(double estimate_usd);

    // Ends a reservation made by reserve() with the cost the response reported.
    void settle(double reserved_usd, double actual_usd);

    std::optional<double> limit_usd() const { return m_limit_usd; }
    double spent_usd() const { return m_spent_usd; }
    double reserved_usd() const { return m_reserved_usd; }
    bool is_stopped() const { return m_is_stopped; }

private:
    std::optional<double> m_limit_usd;
    double m_spent_usd = 0.0;
    double m_reserved_usd = 0.0;
    unsigned m_open_reservations = 0; // counted, because sums of doubles drift from 0
    bool m_is_stopped = false;
};

} // namespace athena::providers
