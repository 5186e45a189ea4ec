#include "providers/budget.hpp"

#include <doctest/doctest.h>

using athena::providers::BudgetDecision;
using athena::providers::CostBudget;

TEST_CASE("Budget: reservations against --max-cost") {
    SUBCASE("no limit always goes") {
        CostBudget budget(std::nullopt);
        for (int i = 0; i < 100; ++i) {
            CHECK(budget.reserve(1000.0) == BudgetDecision::go);
        }
    }
    SUBCASE("requests go while the worst case fits") {
        CostBudget budget(1.0);
        CHECK(budget.reserve(0.4) == BudgetDecision::go);
        CHECK(budget.reserve(0.4) == BudgetDecision::go);
        CHECK(budget.reserved_usd() == doctest::Approx(0.8));
    }
    SUBCASE("a request that does not fit waits for those in flight") {
        CostBudget budget(1.0);
        CHECK(budget.reserve(0.6) == BudgetDecision::go);
        CHECK(budget.reserve(0.6) == BudgetDecision::wait);
        budget.settle(0.6, 0.1); // the first one cost less than its worst case
        CHECK(budget.spent_usd() == doctest::Approx(0.1));
        CHECK(budget.reserve(0.6) == BudgetDecision::go);
    }
    SUBCASE("with nothing in flight, no room stops for good") {
        CostBudget budget(1.0);
        CHECK(budget.reserve(0.5) == BudgetDecision::go);
        budget.settle(0.5, 0.7);
        CHECK(budget.reserve(0.5) == BudgetDecision::stop);
        CHECK(budget.is_stopped());
        CHECK(budget.reserve(0.0001) == BudgetDecision::stop);
    }
    SUBCASE("a zero limit sends nothing priced") {
        CostBudget budget(0.0);
        CHECK(budget.reserve(0.001) == BudgetDecision::stop);
    }
    SUBCASE("free requests pass a zero limit") {
        CostBudget budget(0.0);
        CHECK(budget.reserve(0.0) == BudgetDecision::go);
    }
}
