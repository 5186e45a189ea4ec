#include "providers/http_loop.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <mutex>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace athena::providers {
namespace {

// A response body larger than this is abandoned: no verdict is that long.
constexpr std::size_t k_max_body_bytes = 8u << 20;
// The loop wakes at least this often, so a missed wake-up costs no more than this.
constexpr int k_max_poll_ms = 1000;
// How often transfers are checked for a stall after their headers.
constexpr auto k_stall_check_interval = std::chrono::milliseconds(200);
constexpr int k_max_events = 64;

CURLM* multi_of(void* handle) {
    return static_cast<CURLM*>(handle);
}

void init_curl_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lower_copy(std::string_view text) {
    std::string result(text);
    std::ranges::transform(result, result.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return result;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    return text;
}

} // namespace

struct EventLoop::Transfer {
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::string body;
    HttpResponse response;
    ResponseCallback done;
    SteadyTime started;
    std::chrono::milliseconds stall_timeout{0};
    bool has_headers = false;
    bool is_stalled = false;
    bool is_too_large = false;
    SteadyTime last_data; // of the headers' end or the latest body bytes
    char error[CURL_ERROR_SIZE] = {};
};

namespace {

using Transfer = EventLoop::Transfer;

size_t on_body(char* data, size_t size, size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    const size_t bytes = size * count;
    if (transfer->response.body.size() + bytes > k_max_body_bytes) {
        transfer->is_too_large = true;
        return 0; // ends the transfer with CURLE_WRITE_ERROR
    }
    transfer->response.body.append(data, bytes);
    transfer->last_data = std::chrono::steady_clock::now();
    return bytes;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    const size_t bytes = size * count;
    const std::string_view line(data, bytes);
    if (line.starts_with("HTTP/")) {
        transfer->response.headers.clear(); // a new response, e.g. after 100 Continue
    } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
        transfer->response.headers[lower_copy(trim(line.substr(0, colon)))] =
            std::string(trim(line.substr(colon + 1)));
    } else if (trim(line).empty()) {
        transfer->has_headers = true;
        transfer->last_data = std::chrono::steady_clock::now();
    }
    return bytes;
}

} // namespace

// The socket interface tells curl which socket is ready, so a round costs work for the
// sockets that moved only; curl_multi_perform would check every transfer's socket instead.
EventLoop::EventLoop(std::size_t max_connections) {
    init_curl_once();
    m_epoll = ::epoll_create1(EPOLL_CLOEXEC);
    m_wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = m_wake;
    ::epoll_ctl(m_epoll, EPOLL_CTL_ADD, m_wake, &event);

    m_multi = curl_multi_init();
    CURLM* multi = multi_of(m_multi);
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
                      static_cast<long>(std::max<std::size_t>(max_connections, 4)));
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &EventLoop::on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &EventLoop::on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
}

EventLoop::~EventLoop() {
    cancel_all();
    for (void* easy : m_idle_handles) {
        curl_easy_cleanup(static_cast<CURL*>(easy));
    }
    curl_multi_cleanup(multi_of(m_multi));
    ::close(m_wake);
    ::close(m_epoll);
}

void EventLoop::post(LoopTask task) {
    {
        std::lock_guard lock(m_posted_mutex);
        m_posted.push_back(std::move(task));
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(m_wake, &one, sizeof one);
}

// curl tells which events a socket needs; epoll watches for them.
int EventLoop::on_socket(void*, int socket, int what, void* loop, void*) {
    auto* self = static_cast<EventLoop*>(loop);
    if (what == CURL_POLL_REMOVE) {
        ::epoll_ctl(self->m_epoll, EPOLL_CTL_DEL, socket, nullptr);
        return 0;
    }
    epoll_event event{};
    event.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    event.data.fd = socket;
    if (::epoll_ctl(self->m_epoll, EPOLL_CTL_MOD, socket, &event) != 0) {
        ::epoll_ctl(self->m_epoll, EPOLL_CTL_ADD, socket, &event);
    }
    return 0;
}

// curl asks to be called back after timeout_ms (-1: no timer).
int EventLoop::on_timer(void*, long timeout_ms, void* loop) {
    auto* self = static_cast<EventLoop*>(loop);
    if (timeout_ms < 0) {
        self->m_curl_deadline.reset();
    } else {
        self->m_curl_deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    }
    return 0;
}

void EventLoop::drive_curl(int socket, int events) {
    int running = 0;
    curl_multi_socket_action(multi_of(m_multi), socket, events, &running);
}

void EventLoop::send(HttpRequest request, const TransferLimits& limits, ResponseCallback done) {
    auto* transfer = new Transfer();
    transfer->done = std::move(done);
    transfer->body = std::move(request.body);
    transfer->stall_timeout = limits.stall_timeout;
    transfer->started = std::chrono::steady_clock::now();
    transfer->last_data = transfer->started;
    if (m_idle_handles.empty()) {
        transfer->easy = curl_easy_init();
    } else {
        transfer->easy = static_cast<CURL*>(m_idle_handles.back());
        m_idle_handles.pop_back();
        curl_easy_reset(transfer->easy);
    }
    for (const std::string& header : request.headers) {
        transfer->headers = curl_slist_append(transfer->headers, header.c_str());
    }
    transfer->headers = curl_slist_append(transfer->headers, "Expect:");

    CURL* easy = transfer->easy;
    curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, transfer->body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(transfer->body.size()));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(limits.timeout.count()));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(limits.connect_timeout.count()));
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "athena/" ATHENA_VERSION);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    // Wait for a connection that may multiplex rather than open one more; only TLS
    // connections negotiate HTTP/2, so plain HTTP skips the wait.
    curl_easy_setopt(easy, CURLOPT_PIPEWAIT, request.url.starts_with("https:") ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer);

    curl_multi_add_handle(multi_of(m_multi), easy);
    m_live.push_back(transfer);
    ++m_transfers;
}

void EventLoop::schedule(SteadyTime at, LoopTask task) {
    m_timers.push(Timer{at, m_timer_sequence++, std::make_shared<LoopTask>(std::move(task))});
}

void EventLoop::cancel_all() {
    std::vector<Transfer*> live;
    live.swap(m_live);
    for (Transfer* transfer : live) {
        transfer->response.is_cancelled = true;
        finish(transfer, CURLE_ABORTED_BY_CALLBACK);
    }
    m_timers = {};
}

// Hands the response to its callback and recycles the handle.
void EventLoop::finish(Transfer* transfer, int code) {
    curl_multi_remove_handle(multi_of(m_multi), transfer->easy);
    std::erase(m_live, transfer);
    --m_transfers;

    HttpResponse& response = transfer->response;
    response.latency = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - transfer->started);
    long status = 0;
    curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
    response.status = status;
    response.transport_code = code;
    if (code != CURLE_OK) {
        response.is_timeout = code == CURLE_OPERATION_TIMEDOUT || transfer->is_stalled;
        if (response.is_cancelled) {
            response.transport_message = "cancelled at shutdown";
        } else if (transfer->is_stalled) {
            response.transport_message =
                fmt::format("stalled: no data for {} ms after the response headers",
                            transfer->stall_timeout.count());
        } else if (transfer->is_too_large) {
            response.transport_message =
                fmt::format("response body over {} MiB", k_max_body_bytes >> 20);
        } else {
            response.transport_message =
                transfer->error[0] != '\0'
                    ? fmt::format("{} ({})", transfer->error,
                                  curl_easy_strerror(static_cast<CURLcode>(code)))
                    : curl_easy_strerror(static_cast<CURLcode>(code));
        }
    }

    curl_slist_free_all(transfer->headers);
    m_idle_handles.push_back(transfer->easy);
    ResponseCallback done = std::move(transfer->done);
    HttpResponse finished = std::move(response);
    delete transfer;
    done(std::move(finished));
}

void EventLoop::run_posted() {
    std::vector<LoopTask> tasks;
    {
        std::lock_guard lock(m_posted_mutex);
        tasks.swap(m_posted);
    }
    for (LoopTask& task : tasks) {
        task();
    }
}

// Ends transfers whose body has not moved for their stall timeout since the headers came.
void EventLoop::end_stalled_transfers(SteadyTime now) {
    m_next_stall_check = now + k_stall_check_interval;
    std::vector<Transfer*> stalled;
    for (Transfer* transfer : m_live) {
        if (transfer->has_headers && now - transfer->last_data > transfer->stall_timeout) {
            stalled.push_back(transfer);
        }
    }
    for (Transfer* transfer : stalled) {
        transfer->is_stalled = true;
        finish(transfer, CURLE_OPERATION_TIMEDOUT);
    }
}

void EventLoop::run_due_timers() {
    const auto now = std::chrono::steady_clock::now();
    if (m_curl_deadline && *m_curl_deadline <= now) {
        m_curl_deadline.reset();
        drive_curl(CURL_SOCKET_TIMEOUT, 0);
    }
    if (!m_live.empty() && m_next_stall_check <= now) {
        end_stalled_transfers(now);
    }
    while (!m_timers.empty() && m_timers.top().at <= now) {
        std::shared_ptr<LoopTask> task = m_timers.top().task;
        m_timers.pop();
        (*task)();
    }
    if (m_deadline_source && m_deadline_handler) {
        if (const auto deadline = m_deadline_source(); deadline && *deadline <= now) {
            m_deadline_handler(now);
        }
    }
}

void EventLoop::finish_done_transfers() {
    // Collect first: a callback may start transfers, which must not disturb the message
    // queue being read.
    std::vector<std::pair<Transfer*, int>> done;
    int remaining = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_of(m_multi), &remaining)) {
        if (message->msg != CURLMSG_DONE) {
            continue;
        }
        Transfer* transfer = nullptr;
        curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &transfer);
        done.emplace_back(transfer, static_cast<int>(message->data.result));
    }
    for (const auto& [transfer, code] : done) {
        finish(transfer, code);
    }
}

int EventLoop::poll_timeout_ms() const {
    {
        std::lock_guard lock(m_posted_mutex);
        if (!m_posted.empty()) {
            return 0;
        }
    }
    std::optional<SteadyTime> next = m_curl_deadline;
    const auto earliest = [&next](SteadyTime at) { next = next ? std::min(*next, at) : at; };
    if (!m_timers.empty()) {
        earliest(m_timers.top().at);
    }
    if (!m_live.empty()) {
        earliest(m_next_stall_check);
    }
    if (m_deadline_source) {
        if (const auto deadline = m_deadline_source()) {
            earliest(*deadline);
        }
    }
    if (!next) {
        return k_max_poll_ms;
    }
    const auto wait =
        std::chrono::ceil<std::chrono::milliseconds>(*next - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<std::int64_t>(wait.count(), 0, k_max_poll_ms));
}

void EventLoop::run(const std::function<bool()>& is_done) {
    epoll_event events[k_max_events];
    for (;;) {
        run_posted();
        run_due_timers();
        finish_done_transfers();
        if (is_done()) {
            return;
        }
        const int count = ::epoll_wait(m_epoll, events, k_max_events, poll_timeout_ms());
        for (int i = 0; i < count; ++i) {
            const int fd = events[i].data.fd;
            if (fd == m_wake) {
                std::uint64_t posted = 0;
                [[maybe_unused]] const ssize_t read = ::read(m_wake, &posted, sizeof posted);
                continue;
            }
            const std::uint32_t flags = events[i].events;
            const int action = (flags & (EPOLLIN | EPOLLHUP) ? CURL_CSELECT_IN : 0) |
                               (flags & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                               (flags & EPOLLERR ? CURL_CSELECT_ERR : 0);
            drive_curl(fd, action);
        }
        finish_done_transfers();
    }
}

} // namespace athena::providers
