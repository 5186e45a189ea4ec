// One libcurl multi handle driven by one thread through curl_multi_socket_action and epoll:
// HTTP requests, timers and tasks posted from other threads all run on that thread, so the
// router's state needs no lock.
#pragma once

#include "providers/wire.hpp"

#include <athena/clock.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <vector>

namespace athena::providers {

using LoopTask = std::move_only_function<void()>;
using ResponseCallback = std::move_only_function<void(HttpResponse&&)>;

struct TransferLimits {
    std::chrono::milliseconds timeout{60'000}; // whole transfer
    std::chrono::milliseconds connect_timeout{10'000};
    // No body byte for this long after the response headers ends the transfer. The wait
    // for the headers is bounded by `timeout` only, since a model may think for a while.
    std::chrono::milliseconds stall_timeout{30'000};
};

// Not copyable. post() is thread-safe. Everything else runs on the thread that calls run(),
// which may differ from the thread that created the loop.
class EventLoop {
public:
    // max_connections: idle connections kept for reuse.
    explicit EventLoop(std::size_t max_connections);
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    struct Transfer; // one request in flight; defined in http_loop.cpp

    // Queues `task` for the loop thread and wakes it.
    void post(LoopTask task);

    // Runs transfers, timers and posted tasks until `is_done()` returns true; it is checked
    // after each round.
    void run(const std::function<bool()>& is_done);

    // Starts a POST. `done` runs on the loop thread exactly once: with the response, with a
    // transport failure, or with is_cancelled set by cancel_all().
    void send(HttpRequest request, const TransferLimits& limits, ResponseCallback done);

    // Runs `task` on the loop thread at `at` (or soon after).
    void schedule(SteadyTime at, LoopTask task);

    // Ends every transfer (their callbacks see is_cancelled) and drops every timer.
    void cancel_all();

    std::size_t transfers_in_flight() const { return m_transfers; }
    std::size_t timers_pending() const { return m_timers.size(); }

    // A further wake-up time, such as a call gate's next deadline, read every round.
    void set_deadline_source(std::function<std::optional<SteadyTime>()> source) {
        m_deadline_source = std::move(source);
    }
    void set_deadline_handler(std::function<void(SteadyTime)> handler) {
        m_deadline_handler = std::move(handler);
    }

private:
    struct Timer {
        SteadyTime at;
        std::uint64_t sequence;
        std::shared_ptr<LoopTask> task;
        bool operator>(const Timer& other) const {
            return at != other.at ? at > other.at : sequence > other.sequence;
        }
    };
    void run_posted();
    void run_due_timers();
    void finish_done_transfers();
    void finish(Transfer* transfer, int code);
    void end_stalled_transfers(SteadyTime now);
    int poll_timeout_ms() const;
    void drive_curl(int socket, int events);

    static int on_socket(void* easy, int socket, int what, void* loop, void* socket_data);
    static int on_timer(void* multi, long timeout_ms, void* loop);

    void* m_multi = nullptr;
    int m_epoll = -1;
    int m_wake = -1;                           // eventfd that post() writes to
    std::optional<SteadyTime> m_curl_deadline; // when curl wants CURL_SOCKET_TIMEOUT
    SteadyTime m_next_stall_check{};
    std::vector<void*> m_idle_handles;
    std::size_t m_transfers = 0;
    std::vector<Transfer*> m_live;

    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> m_timers;
    std::uint64_t m_timer_sequence = 0;

    mutable std::mutex m_posted_mutex; // guards m_posted
    std::vector<LoopTask> m_posted;

    std::function<std::optional<SteadyTime>()> m_deadline_source;
    std::function<void(SteadyTime)> m_deadline_handler;
};

} // namespace athena::providers
