#include <athena/bulkhead.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <utility>
#include <vector>

namespace athena {

namespace {

using Milliseconds = std::chrono::milliseconds;

// Fixed-bucket histogram of durations: constant memory however many calls a run makes.
class DurationHistogram {
public:
    void add(Milliseconds duration) {
        const std::int64_t value_ms = std::max<std::int64_t>(duration.count(), 0);
        const auto bucket =
            std::lower_bound(k_upper_bounds_ms.begin(), k_upper_bounds_ms.end(), value_ms) -
            k_upper_bounds_ms.begin();
        ++m_counts[static_cast<std::size_t>(bucket)];
        ++m_total;
        m_max_ms = std::max(m_max_ms, value_ms);
    }

    DurationPercentiles summary() const {
        DurationPercentiles summary;
        summary.count = m_total;
        summary.p50 = percentile(0.50);
        summary.p90 = percentile(0.90);
        summary.p99 = percentile(0.99);
        summary.max = Milliseconds{m_max_ms};
        return summary;
    }

private:
    static constexpr std::array<std::int64_t, 19> k_upper_bounds_ms = {
        0,    1,    2,    5,     10,    20,    50,    100,    200,   500,
        1000, 2000, 5000, 10000, 20000, 30000, 60000, 120000, 300000};

    // Returns the upper bound of the bucket that contains the value of rank
    // ceil(quantile × count), cut to the largest value seen. The overflow bucket reports that
    // largest value.
    Milliseconds percentile(double quantile) const {
        if (m_total == 0) {
            return Milliseconds{0};
        }
        const auto rank = std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(std::ceil(quantile * static_cast<double>(m_total))));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < k_upper_bounds_ms.size(); ++i) {
            seen += m_counts[i];
            if (seen >= rank) {
                return Milliseconds{std::min(k_upper_bounds_ms[i], m_max_ms)};
            }
        }
        return Milliseconds{m_max_ms};
    }

    std::array<std::uint64_t, k_upper_bounds_ms.size() + 1> m_counts{};
    std::uint64_t m_total = 0;
    std::int64_t m_max_ms = 0;
};

BulkheadConfig clamp_config(BulkheadConfig config) {
    config.max_concurrent = std::max<std::size_t>(config.max_concurrent, 1);
    config.queue_timeout = std::max(config.queue_timeout, Milliseconds{0});
    return config;
}

} // namespace

namespace detail {

// State shared by a Bulkhead and its permits. The fields after `mutex` are guarded by it;
// the ones before it are set once at construction.
struct BulkheadCore : std::enable_shared_from_this<BulkheadCore> {
    enum class WaiterStatus { waiting, granted, timed_out };

    struct Waiter {
        std::uint64_t ticket = 0;
        SteadyTime enqueued_at;
        SteadyTime deadline;
        bool is_async = false;      // queued by acquire_async(), else by acquire()
        PermitCallback on_ready;    // acquire_async() only
        std::condition_variable cv; // acquire() only
        WaiterStatus status = WaiterStatus::waiting;
        SteadyTime granted_at;
    };

    // Callbacks of asynchronous waiters, collected under the lock and run after it.
    using Deliveries = std::vector<std::pair<PermitCallback, Result<BulkheadPermit>>>;

    BulkheadCore(std::string bulkhead_name, BulkheadConfig bulkhead_config,
                 std::shared_ptr<Clock> bulkhead_clock)
        : name(std::move(bulkhead_name)), config(clamp_config(bulkhead_config)),
          clock(std::move(bulkhead_clock)) {}

    bool has_free_slot() const { return active < config.max_concurrent && queue.empty(); }
    BulkheadPermit make_permit(SteadyTime granted_at) {
        return BulkheadPermit(shared_from_this(), granted_at);
    }
    BulkheadPermit grant_now(SteadyTime now);
    std::shared_ptr<Waiter> enqueue(SteadyTime now, PermitCallback on_ready);
    std::size_t expire(SteadyTime now, Deliveries& deliveries);
    void release(SteadyTime granted_at);
    void on_clock_advance();
    std::string full_message() const;
    std::string timeout_message() const;

    static void deliver(Deliveries& deliveries) {
        for (auto& [on_ready, result] : deliveries) {
            on_ready(std::move(result));
        }
        deliveries.clear();
    }

    const std::string name;
    const BulkheadConfig config;
    const std::shared_ptr<Clock> clock;

    mutable std::mutex mutex;
    std::size_t active = 0;
    std::deque<std::shared_ptr<Waiter>> queue; // oldest first
    std::uint64_t next_ticket = 1;
    std::size_t peak_active = 0;
    std::size_t peak_queued = 0;
    std::uint64_t acquired = 0;
    std::uint64_t rejected = 0;
    std::uint64_t timed_out = 0;
    std::uint64_t cancelled = 0;
    DurationHistogram wait_times;
    DurationHistogram execution_times;

    // Declared last so that it is destroyed first: its destructor waits for a running clock
    // callback, which still uses the fields above.
    ClockWatch clock_watch;
};

BulkheadPermit BulkheadCore::grant_now(SteadyTime now) {
    ++active;
    ++acquired;
    peak_active = std::max(peak_active, active);
    wait_times.add(Milliseconds{0});
    return make_permit(now);
}

std::shared_ptr<BulkheadCore::Waiter> BulkheadCore::enqueue(SteadyTime now,
                                                            PermitCallback on_ready) {
    auto waiter = std::make_shared<Waiter>();
    waiter->ticket = next_ticket++;
    waiter->enqueued_at = now;
    waiter->deadline = now + config.queue_timeout;
    waiter->is_async = static_cast<bool>(on_ready);
    waiter->on_ready = std::move(on_ready);
    queue.push_back(waiter);
    peak_queued = std::max(peak_queued, queue.size());
    return waiter;
}

// Every waiter gets the same timeout and the queue is in arrival order, so the deadlines
// rise along the queue and the expired waiters are a prefix of it.
std::size_t BulkheadCore::expire(SteadyTime now, Deliveries& deliveries) {
    std::size_t expired = 0;
    while (!queue.empty() && queue.front()->deadline <= now) {
        const std::shared_ptr<Waiter> waiter = std::move(queue.front());
        queue.pop_front();
        waiter->status = WaiterStatus::timed_out;
        ++timed_out;
        ++expired;
        if (waiter->is_async) {
            deliveries.emplace_back(std::move(waiter->on_ready),
                                    fail("bulkhead_timeout", timeout_message()));
        } else {
            waiter->cv.notify_one();
        }
    }
    return expired;
}

// The slot passes straight to the oldest waiter, so `active` stays the same and no other
// caller can take the slot between the release and the waiter's wake-up.
void BulkheadCore::release(SteadyTime granted_at) {
    Deliveries deliveries;
    {
        std::lock_guard guard(mutex);
        const SteadyTime now = clock->now();
        execution_times.add(std::chrono::floor<Milliseconds>(now - granted_at));
        expire(now, deliveries);

        if (queue.empty()) {
            --active;
        } else {
            const std::shared_ptr<Waiter> waiter = std::move(queue.front());
            queue.pop_front();
            waiter->status = WaiterStatus::granted;
            waiter->granted_at = now;
            ++acquired;
            wait_times.add(std::chrono::floor<Milliseconds>(now - waiter->enqueued_at));
            if (waiter->is_async) {
                deliveries.emplace_back(std::move(waiter->on_ready), make_permit(now));
            } else {
                waiter->cv.notify_one();
            }
        }
    }
    deliver(deliveries);
}

void BulkheadCore::on_clock_advance() {
    Deliveries deliveries;
    {
        std::lock_guard guard(mutex);
        expire(clock->now(), deliveries);
    }
    deliver(deliveries);
}

std::string BulkheadCore::full_message() const {
    return fmt::format("bulkhead {} is full: {} of {} calls active and {} of {} queued", name,
                       active, config.max_concurrent, queue.size(), config.max_queued);
}

std::string BulkheadCore::timeout_message() const {
    return fmt::format("bulkhead {} timed out after {} ms waiting for one of its {} slots", name,
                       config.queue_timeout.count(), config.max_concurrent);
}

} // namespace detail

BulkheadConfig global_bulkhead_config() {
    BulkheadConfig config;
    config.max_concurrent = 30;
    return config;
}

Result<void> validate_bulkhead_config(const BulkheadConfig& config, std::string_view name) {
    if (config.max_concurrent < 1) {
        return fail("usage",
                    fmt::format("bulkhead {}: max_concurrent is 0, expected at least 1", name));
    }
    if (config.queue_timeout.count() < 0) {
        return fail("usage", fmt::format("bulkhead {}: queue_timeout is {} ms, expected 0 or "
                                         "more",
                                         name, config.queue_timeout.count()));
    }
    return {};
}

BulkheadPermit::BulkheadPermit(std::shared_ptr<detail::BulkheadCore> core, SteadyTime granted_at)
    : m_core(std::move(core)), m_granted_at(granted_at) {}

BulkheadPermit::BulkheadPermit(BulkheadPermit&& other) noexcept
    : m_core(std::move(other.m_core)), m_granted_at(other.m_granted_at) {}

BulkheadPermit& BulkheadPermit::operator=(BulkheadPermit&& other) noexcept {
    if (this != &other) {
        release();
        m_core = std::move(other.m_core);
        m_granted_at = other.m_granted_at;
    }
    return *this;
}

BulkheadPermit::~BulkheadPermit() {
    release();
}

void BulkheadPermit::release() {
    if (m_core == nullptr) {
        return;
    }
    const std::shared_ptr<detail::BulkheadCore> core = std::move(m_core);
    core->release(m_granted_at);
}

Bulkhead::Bulkhead(std::string name, BulkheadConfig config, std::shared_ptr<Clock> clock)
    : m_core(std::make_shared<detail::BulkheadCore>(std::move(name), config,
                                                    clock ? std::move(clock) : system_clock())) {
    // The raw pointer is safe: the core's destructor first destroys the watch, which waits
    // for a running callback and removes it.
    detail::BulkheadCore* core = m_core.get();
    m_core->clock_watch = m_core->clock->watch([core] { core->on_clock_advance(); });
}

Bulkhead::~Bulkhead() = default;

Result<BulkheadPermit> Bulkhead::acquire() {
    detail::BulkheadCore& core = *m_core;
    detail::BulkheadCore::Deliveries deliveries;
    std::unique_lock lock(core.mutex);
    const SteadyTime now = core.clock->now();
    core.expire(now, deliveries);

    if (core.has_free_slot()) {
        BulkheadPermit permit = core.grant_now(now);
        lock.unlock();
        core.deliver(deliveries);
        return permit;
    }
    if (core.queue.size() >= core.config.max_queued) {
        ++core.rejected;
        std::string message = core.full_message();
        lock.unlock();
        core.deliver(deliveries);
        return fail("bulkhead_full", std::move(message));
    }

    const auto waiter = core.enqueue(now, nullptr);
    if (!deliveries.empty()) {
        lock.unlock();
        core.deliver(deliveries);
        lock.lock();
    }

    // The waiter leaves the queue in one of three ways: release() grants it a slot,
    // expire() times it out (another caller or a clock callback), or it notices its own
    // deadline here.
    using Status = detail::BulkheadCore::WaiterStatus;
    while (true) {
        if (waiter->status == Status::granted) {
            return core.make_permit(waiter->granted_at);
        }
        if (waiter->status == Status::timed_out) {
            return fail("bulkhead_timeout", core.timeout_message());
        }
        if (core.clock->now() >= waiter->deadline) {
            std::erase(core.queue, waiter);
            waiter->status = Status::timed_out;
            ++core.timed_out;
            return fail("bulkhead_timeout", core.timeout_message());
        }
        core.clock->wait_until(lock, waiter->cv, waiter->deadline);
    }
}

Result<BulkheadPermit> Bulkhead::try_acquire() {
    detail::BulkheadCore& core = *m_core;
    detail::BulkheadCore::Deliveries deliveries;
    Result<BulkheadPermit> result = fail("bulkhead_full", "");
    {
        std::lock_guard guard(core.mutex);
        const SteadyTime now = core.clock->now();
        core.expire(now, deliveries);
        if (core.has_free_slot()) {
            result = core.grant_now(now);
        } else {
            ++core.rejected;
            result =
                fail("bulkhead_full", fmt::format("bulkhead {} has no free slot: {} of {} "
                                                  "calls active and {} queued",
                                                  core.name, core.active,
                                                  core.config.max_concurrent, core.queue.size()));
        }
    }
    core.deliver(deliveries);
    return result;
}

Result<AsyncAcquire> Bulkhead::acquire_async(PermitCallback on_ready) {
    if (!on_ready) {
        // A granted permit then goes out of scope at once and its slot passes on. Without a
        // callback, the slot would stay with a waiter that no thread can notify.
        on_ready = [](Result<BulkheadPermit>) {};
    }
    detail::BulkheadCore& core = *m_core;
    detail::BulkheadCore::Deliveries deliveries;
    Result<AsyncAcquire> result = AsyncAcquire{};
    {
        std::lock_guard guard(core.mutex);
        const SteadyTime now = core.clock->now();
        core.expire(now, deliveries);
        if (core.has_free_slot()) {
            result->permit = core.grant_now(now);
        } else if (core.queue.size() >= core.config.max_queued) {
            ++core.rejected;
            result = fail("bulkhead_full", core.full_message());
        } else {
            result->ticket = core.enqueue(now, std::move(on_ready))->ticket;
        }
    }
    core.deliver(deliveries);
    return result;
}

bool Bulkhead::cancel(std::uint64_t ticket) {
    std::lock_guard guard(m_core->mutex);
    auto& queue = m_core->queue;
    const auto found = std::find_if(queue.begin(), queue.end(), [ticket](const auto& waiter) {
        return waiter->ticket == ticket && waiter->is_async;
    });
    if (found == queue.end()) {
        return false;
    }
    queue.erase(found);
    ++m_core->cancelled;
    return true;
}

std::size_t Bulkhead::expire_waiters() {
    detail::BulkheadCore::Deliveries deliveries;
    std::size_t expired = 0;
    {
        std::lock_guard guard(m_core->mutex);
        expired = m_core->expire(m_core->clock->now(), deliveries);
    }
    m_core->deliver(deliveries);
    return expired;
}

std::optional<SteadyTime> Bulkhead::next_deadline() const {
    std::lock_guard guard(m_core->mutex);
    if (m_core->queue.empty()) {
        return std::nullopt;
    }
    return m_core->queue.front()->deadline;
}

BulkheadStats Bulkhead::stats() const {
    const detail::BulkheadCore& core = *m_core;
    std::lock_guard guard(core.mutex);
    BulkheadStats stats;
    stats.name = core.name;
    stats.max_concurrent = core.config.max_concurrent;
    stats.active = core.active;
    stats.queued = core.queue.size();
    stats.peak_active = core.peak_active;
    stats.peak_queued = core.peak_queued;
    stats.acquired = core.acquired;
    stats.rejected = core.rejected;
    stats.timed_out = core.timed_out;
    stats.cancelled = core.cancelled;
    stats.wait = core.wait_times.summary();
    stats.execution = core.execution_times.summary();
    return stats;
}

const std::string& Bulkhead::name() const {
    return m_core->name;
}

} // namespace athena
