// Bulkhead: a counting semaphore with a bounded FIFO queue and a queue timeout. One per
// provider limits the calls in flight to it; one more ("global") limits AI calls across all
// providers. Callers should acquire them in one fixed order (the provider's, then the global
// one). Two callers that take them in opposite orders can each hold the slot that the other
// waits for, until the queue timeout ends the wait.
//
// Three ways to get a slot:
//   acquire()        blocks the calling thread in the queue, up to queue_timeout
//   try_acquire()    never waits for a slot and never queues
//   acquire_async()  never waits for a slot: returns a permit at once, or queues the
//                    request and hands the permit (or the timeout) to a callback later.
//                    This is the entry point for the dispatcher's event loop (one
//                    libcurl-multi thread), which must not block: it calls next_deadline()
//                    to size its poll timeout and expire_waiters() when that timeout fires.
//
// Queued requests, blocking and asynchronous alike, are served strictly in arrival order: a
// released slot passes straight to the oldest waiter, and no caller can take a free slot
// while a request is queued.
#pragma once

#include <athena/clock.hpp>
#include <athena/error.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace athena {

struct BulkheadConfig {
    std::size_t max_concurrent = 20;                 // slots: permits held at the same time
    std::size_t max_queued = 100;                    // waiters beyond this are rejected at once
    std::chrono::milliseconds queue_timeout{60'000}; // maximum time a waiter stays queued
};

// The global bulkhead across providers: 30 slots, same queue size and timeout.
BulkheadConfig global_bulkhead_config();

// Checks max_concurrent >= 1 and queue_timeout >= 0. Errors: kind "usage" naming `name`.
Result<void> validate_bulkhead_config(const BulkheadConfig& config, std::string_view name);

// Percentiles of a duration distribution. They come from fixed histogram buckets (0, 1, 2,
// 5, 10, 20, 50 ms ... 300 s) and report the upper bound of the bucket that contains the
// percentile, but never more than the largest value seen. So a value may overstate the true
// percentile by up to one bucket width.
struct DurationPercentiles {
    std::uint64_t count = 0;
    std::chrono::milliseconds p50{0};
    std::chrono::milliseconds p90{0};
    std::chrono::milliseconds p99{0};
    std::chrono::milliseconds max{0};
};

struct BulkheadStats {
    std::string name;
    std::size_t max_concurrent = 0;
    std::size_t active = 0;        // permits held now
    std::size_t queued = 0;        // waiters now
    std::size_t peak_active = 0;   // highest `active` seen
    std::size_t peak_queued = 0;   // highest `queued` seen
    std::uint64_t acquired = 0;    // permits granted, at once or after queueing
    std::uint64_t rejected = 0;    // queue full, or try_acquire() found no free slot
    std::uint64_t timed_out = 0;   // waiters removed after queue_timeout
    std::uint64_t cancelled = 0;   // asynchronous waiters removed by cancel()
    DurationPercentiles wait;      // request to grant, for every granted permit (0 if at once)
    DurationPercentiles execution; // grant to release, for every released permit
};

namespace detail {
struct BulkheadCore; // shared by a bulkhead and its permits; defined in bulkhead.cpp
} // namespace detail

// One slot of a bulkhead. Destroying the permit (or calling release()) returns the slot,
// which passes to the oldest waiter if there is one. Move-only; keeps the bulkhead's state
// alive, so a permit may outlive its Bulkhead object.
class BulkheadPermit {
public:
    BulkheadPermit() = default;
    BulkheadPermit(BulkheadPermit&& other) noexcept;
    BulkheadPermit& operator=(BulkheadPermit&& other) noexcept;
    BulkheadPermit(const BulkheadPermit&) = delete;
    BulkheadPermit& operator=(const BulkheadPermit&) = delete;
    ~BulkheadPermit();

    // Returns the slot now. Safe to call more than once.
    void release();
    bool is_held() const { return m_core != nullptr; }
    SteadyTime granted_at() const { return m_granted_at; }

private:
    friend struct detail::BulkheadCore;
    BulkheadPermit(std::shared_ptr<detail::BulkheadCore> core, SteadyTime granted_at);

    std::shared_ptr<detail::BulkheadCore> m_core;
    SteadyTime m_granted_at;
};

// Receives the outcome of a queued acquire_async(): a permit, or an error of kind
// "bulkhead_timeout". It runs on whichever thread freed the slot or noticed the timeout (a
// permit's release, expire_waiters(), any acquire call, or ManualClock::advance in tests),
// after the bulkhead's lock is released. So it may call the bulkhead, but it must not throw,
// and an event loop should only queue the result for its own thread (and wake it, e.g. with
// curl_multi_wakeup).
using PermitCallback = std::move_only_function<void(Result<BulkheadPermit>)>;

// Immediate result of acquire_async().
struct AsyncAcquire {
    std::optional<BulkheadPermit> permit; // set when a slot was free; the callback never runs
    // Set (non-zero) when queued. The callback then runs once, with a permit or a timeout
    // error, unless cancel(ticket) returns true first.
    std::uint64_t ticket = 0;
};

// Thread-safe: one mutex guards the slots, the queue and the statistics. An operation holds it
// only for a few steps, never while it waits or runs a callback, and provider calls are
// network round trips, so the lock is not a bottleneck.
class Bulkhead {
public:
    // `name` ("openai", "global") appears in messages and statistics. The config should have
    // passed validate_bulkhead_config(); max_concurrent 0 is raised to 1 and a negative
    // queue_timeout to 0.
    Bulkhead(std::string name, BulkheadConfig config = {},
             std::shared_ptr<Clock> clock = system_clock());
    ~Bulkhead();
    Bulkhead(const Bulkhead&) = delete;
    Bulkhead& operator=(const Bulkhead&) = delete;

    // Returns a permit, waiting in the queue if every slot is taken. Errors: kind
    // "bulkhead_full" at once when the queue is full; kind "bulkhead_timeout" after waiting
    // queue_timeout.
    Result<BulkheadPermit> acquire();

    // Returns a permit if a slot is free and no request is queued. Errors: kind
    // "bulkhead_full".
    Result<BulkheadPermit> try_acquire();

    // Returns a permit if a slot is free and no request is queued. Otherwise queues the request
    // and returns its ticket, and `on_ready` later receives the permit or a
    // "bulkhead_timeout" error (see PermitCallback). Never waits for a slot and never runs
    // `on_ready` itself. Errors: kind "bulkhead_full" when the queue is full (`on_ready` never
    // runs).
    Result<AsyncAcquire> acquire_async(PermitCallback on_ready);

    // Removes a queued asynchronous request. Returns false if it is no longer queued (its
    // callback has run or is about to run).
    bool cancel(std::uint64_t ticket);

    // Times out every waiter queued for queue_timeout or longer and runs the callbacks of
    // the asynchronous ones. Returns how many timed out. Every acquire call and every release
    // also does this, so it is needed only when nothing else happens, i.e. from the event
    // loop's timer.
    std::size_t expire_waiters();

    // The time at which the oldest waiter times out; empty when no request is queued.
    std::optional<SteadyTime> next_deadline() const;

    BulkheadStats stats() const;
    const std::string& name() const;

private:
    std::shared_ptr<detail::BulkheadCore> m_core;
};

} // namespace athena
