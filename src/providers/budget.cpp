#include "providers/budget.hpp"

namespace athena::providers {

BudgetDecision CostBudget::reserve(double estimate_usd) {
    if (m_is_stopped) {
        return BudgetDecision::stop;
    }
    if (!m_limit_usd || m_spent_usd + m_reserved_usd + estimate_usd <= *m_limit_usd) {
        m_reserved_usd += estimate_usd;
        ++m_open_reservations;
        return BudgetDecision::go;
    }
    // Reservations are worst cases; a request in flight usually settles for less and may
    // leave room for this one.
    if (m_open_reservations > 0) {
        return BudgetDecision::wait;
    }
    m_is_stopped = true;
    return BudgetDecision::stop;
}

void CostBudget::settle(double reserved_usd, double actual_usd) {
    m_spent_usd += actual_usd;
    if (m_open_reservations > 0) {
        --m_open_reservations;
    }
    m_reserved_usd = m_open_reservations == 0 ? 0.0 : m_reserved_usd - reserved_usd;
}

} // namespace athena::providers
