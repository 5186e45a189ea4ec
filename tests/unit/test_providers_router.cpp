#include <athena/analyser.hpp>
#include <athena/providers.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace athena;
using namespace std::chrono_literals;
using Json = nlohmann::json;

namespace {

// A small HTTP/1.1 server on 127.0.0.1 that speaks the Anthropic and OpenAI formats: one
// thread per connection, keep-alive, bodies by Content-Length. Each response status comes
// from a script (then 200), and the threat level from `level`.
class TestServer {
public:
    TestServer() {
        m_listener = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(m_listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(m_listener, 64) == 0);
        socklen_t length = sizeof address;
        ::getsockname(m_listener, reinterpret_cast<sockaddr*>(&address), &length);
        m_port = ntohs(address.sin_port);
        m_acceptor = std::thread([this] { accept_all(); });
    }
    ~TestServer() {
        m_is_stopping = true;
        ::shutdown(m_listener, SHUT_RDWR);
        ::close(m_listener);
        m_acceptor.join();
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(m_mutex);
            for (int connection : m_connections) {
                ::shutdown(connection, SHUT_RDWR);
            }
            threads.swap(m_threads);
        }
        // A thread in a delayed response finishes it first; the others end at once.
        for (std::thread& thread : threads) {
            thread.join();
        }
    }

    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }

    void script(std::vector<int> statuses) {
        std::lock_guard lock(m_mutex);
        m_statuses = std::move(statuses);
    }
    int requests(const std::string& api) {
        std::lock_guard lock(m_mutex);
        return api == "anthropic" ? m_anthropic : m_openai;
    }

    std::string level = "benign";
    std::chrono::milliseconds delay{0};

private:
    void accept_all() {
        while (!m_is_stopping) {
            const int connection = ::accept(m_listener, nullptr, nullptr);
            if (connection < 0) {
                return;
            }
            std::lock_guard lock(m_mutex);
            m_connections.push_back(connection);
            m_threads.emplace_back([this, connection] { serve(connection); });
        }
    }

    // Reads requests until the peer closes; answers each one.
    void serve(int connection) {
        std::string buffer;
        char chunk[4096];
        for (;;) {
            const auto header_end = buffer.find("\r\n\r\n");
            if (header_end != std::string::npos) {
                const std::string head = buffer.substr(0, header_end);
                std::size_t body_length = 0;
                const auto field = head.find("Content-Length:");
                if (field != std::string::npos) {
                    body_length = std::stoul(head.substr(field + 15));
                }
                if (buffer.size() >= header_end + 4 + body_length) {
                    const std::string api =
                        head.find("/v1/messages") != std::string::npos ? "anthropic" : "openai";
                    buffer.erase(0, header_end + 4 + body_length);
                    const std::string reply = respond(api);
                    if (::send(connection, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) {
                        break;
                    }
                    continue;
                }
            }
            const ssize_t received = ::recv(connection, chunk, sizeof chunk, 0);
            if (received <= 0) {
                break;
            }
            buffer.append(chunk, static_cast<std::size_t>(received));
        }
        // Forget the descriptor before closing it, so the destructor never shuts down a
        // reused number.
        {
            std::lock_guard lock(m_mutex);
            std::erase(m_connections, connection);
        }
        ::close(connection);
    }

    std::string respond(const std::string& api) {
        int status = 200;
        {
            std::lock_guard lock(m_mutex);
            ++(api == "anthropic" ? m_anthropic : m_openai);
            if (!m_statuses.empty()) {
                status = m_statuses.front();
                m_statuses.erase(m_statuses.begin());
            }
        }
        std::this_thread::sleep_for(delay);
        std::string body = R"({"error":{"message":"scripted failure"}})";
        if (status == 200) {
            const Json verdict = {{"threat_level", level}, {"confidence", 0.8}, {"summary", "ok"}};
            body =
                (api == "anthropic"
                     ? Json{{"content", Json::array({{{"type", "tool_use"}, {"input", verdict}}})},
                            {"stop_reason", "tool_use"},
                            {"usage", {{"input_tokens", 1000}, {"output_tokens", 100}}}}
                     : Json{{"choices", Json::array({{{"message", {{"content", verdict.dump()}}},
                                                      {"finish_reason", "stop"}}})},
                            {"usage", {{"prompt_tokens", 1000}, {"completion_tokens", 100}}}})
                    .dump();
        }
        return "HTTP/1.1 " + std::to_string(status) +
               " Test\r\nContent-Type: application/json\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
    }

    int m_listener = -1;
    int m_port = 0;
    std::atomic<bool> m_is_stopping{false};
    std::thread m_acceptor;
    std::mutex m_mutex; // guards everything below
    std::vector<int> m_connections;
    std::vector<std::thread> m_threads;
    std::vector<int> m_statuses;
    int m_anthropic = 0;
    int m_openai = 0;
};

// A gate that records every attempt, and can reject a provider or queue admissions.
class RecordingGate final : public CallGate {
public:
    std::optional<Result<std::unique_ptr<CallPermit>>> admit(const std::string& provider,
                                                             AdmitCallback on_ready) override {
        std::lock_guard lock(m_mutex);
        admitted.push_back(provider);
        if (provider == rejected_provider) {
            return Result<std::unique_ptr<CallPermit>>(fail("breaker_open", "open for a test"));
        }
        if (queue_admissions) {
            // Grant later, from another thread, as a bulkhead with a queue would.
            m_grants.push_back(
                std::async(std::launch::async, [callback = std::move(on_ready)]() mutable {
                    std::this_thread::sleep_for(20ms);
                    callback(std::make_unique<CallPermit>());
                }));
            return std::nullopt;
        }
        return Result<std::unique_ptr<CallPermit>>(std::make_unique<CallPermit>());
    }
    void record(std::unique_ptr<CallPermit> permit, CallOutcome outcome,
                std::chrono::milliseconds latency) override {
        std::lock_guard lock(m_mutex);
        CHECK(permit != nullptr);
        outcomes.push_back(outcome);
        latencies.push_back(latency);
    }

    std::string rejected_provider;
    bool queue_admissions = false;
    std::vector<std::string> admitted;
    std::vector<CallOutcome> outcomes;
    std::vector<std::chrono::milliseconds> latencies;

private:
    std::mutex m_mutex;
    std::vector<std::future<void>> m_grants;
};

ProviderConfig provider(const std::string& name, const std::string& url) {
    const ProviderPreset* preset = find_provider_preset(name);
    ProviderConfig config;
    config.name = name;
    config.api = preset->api;
    config.base_url = preset->api == ProviderApi::openai ? url + "/v1" : url;
    config.model = "test-model";
    config.api_key = "test-key-0123456789";
    config.prices = {3.0, 0.0, 0.0, 15.0};
    config.timeout = 5s;
    return config;
}

RouterOptions options_for(const TestServer& server, std::shared_ptr<CallGate> gate) {
    RouterOptions options;
    options.providers = {provider("anthropic", server.url()), provider("openai", server.url())};
    options.gate = std::move(gate);
    options.retry.backoff.base = 5ms;
    options.retry.backoff.cap = 50ms;
    return options;
}

AnalysisRequest request_with(std::vector<YaraMatch> matches = {}) {
    AnalysisRequest request;
    request.sha256 = std::string(64, 'c');
    request.evidence.file_type = "ASCII text";
    request.evidence.is_text = true;
    request.evidence.excerpt = "hello";
    request.evidence.yara_matches = std::move(matches);
    return request;
}

// Submits one request and waits for its outcome.
AnalysisOutcome analyse(AnalysisService& service, AnalysisRequest request) {
    std::promise<AnalysisOutcome> promise;
    service.submit(std::move(request), [&promise](AnalysisOutcome&& outcome) {
        promise.set_value(std::move(outcome));
    });
    auto future = promise.get_future();
    REQUIRE(future.wait_for(10s) == std::future_status::ready);
    return future.get();
}

std::unique_ptr<AnalysisService> make_router(RouterOptions options) {
    auto router = make_provider_router(std::move(options), make_builtin_analyser(""));
    REQUIRE(router);
    return std::move(*router);
}

} // namespace

TEST_CASE("Router: every attempt passes the gate") {
    TestServer server;
    auto gate = std::make_shared<RecordingGate>();
    server.script({503, 429});
    auto router = make_router(options_for(server, gate));

    const AnalysisOutcome outcome = analyse(*router, request_with());
    router->shutdown(0ms);

    REQUIRE(outcome.verdict);
    CHECK(outcome.provider == "anthropic");
    CHECK(server.requests("anthropic") == 3);
    REQUIRE(gate->outcomes.size() == 3);
    CHECK(gate->outcomes[0] == CallOutcome::failure);
    CHECK(gate->outcomes[1] == CallOutcome::failure);
    CHECK(gate->outcomes[2] == CallOutcome::success);
    CHECK(gate->latencies.size() == 3);
    // Tokens of the successful attempt, priced at 3 and 15 USD per million.
    CHECK(outcome.usage.input == 1000);
    CHECK(outcome.cost_usd == doctest::Approx(0.0045));
}

TEST_CASE("Router: failover paths") {
    TestServer server;
    auto gate = std::make_shared<RecordingGate>();

    SUBCASE("a gate rejection skips the provider without a request") {
        gate->rejected_provider = "anthropic";
        auto router = make_router(options_for(server, gate));
        const AnalysisOutcome outcome = analyse(*router, request_with());
        router->shutdown(0ms);
        CHECK(outcome.provider == "openai");
        CHECK(server.requests("anthropic") == 0);
        CHECK(server.requests("openai") == 1);
        CHECK(gate->outcomes.size() == 1);
    }
    SUBCASE("a queued admission is granted later") {
        gate->queue_admissions = true;
        auto router = make_router(options_for(server, gate));
        const AnalysisOutcome outcome = analyse(*router, request_with());
        router->shutdown(0ms);
        CHECK(outcome.provider == "anthropic");
        CHECK(server.requests("anthropic") == 1);
    }
    SUBCASE("400 is recorded as ignored and not retried") {
        server.script({400});
        auto router = make_router(options_for(server, gate));
        const AnalysisOutcome outcome = analyse(*router, request_with());
        router->shutdown(0ms);
        CHECK(outcome.provider == "openai");
        CHECK(server.requests("anthropic") == 1);
        REQUIRE(gate->outcomes.size() == 2);
        CHECK(gate->outcomes[0] == CallOutcome::ignored);
    }
    SUBCASE("a provider without a key is passed over even without failover") {
        RouterOptions options = options_for(server, gate);
        options.failover = false;
        options.providers[0].api_key.clear();
        auto router = make_router(std::move(options));
        const AnalysisOutcome outcome = analyse(*router, request_with());
        router->shutdown(0ms);
        CHECK(outcome.provider == "openai");
        CHECK(server.requests("anthropic") == 0);
    }
    SUBCASE("without failover the builtin answers") {
        server.script({400});
        RouterOptions options = options_for(server, gate);
        options.failover = false;
        auto router = make_router(std::move(options));
        const AnalysisOutcome outcome = analyse(*router, request_with());
        router->shutdown(0ms);
        CHECK(outcome.provider == "builtin");
        CHECK(outcome.is_fallback);
        CHECK(server.requests("openai") == 0);
    }
}

TEST_CASE("Router: hard signature hits floor the level") {
    TestServer server;
    server.level = "benign";
    auto router = make_router(options_for(server, make_open_call_gate()));
    YaraMatch hit{"eicar_test_file", "eicar", {}, "EICAR", "malicious", "EICAR", "test-file"};

    const AnalysisOutcome floored = analyse(*router, request_with({hit}));
    hit.severity = "suspicious";
    const AnalysisOutcome soft = analyse(*router, request_with({hit}));
    router->shutdown(0ms);

    REQUIRE(floored.verdict);
    CHECK(floored.verdict->threat_level == ThreatLevel::malicious);
    CHECK(floored.provider == "anthropic");
    REQUIRE(soft.verdict);
    CHECK(soft.verdict->threat_level == ThreatLevel::benign);
}

TEST_CASE("Router: offline sends nothing") {
    TestServer server;
    RouterOptions options = options_for(server, make_open_call_gate());
    options.offline = true;

    SUBCASE("builtin verdict, marked as a fallback") {
        auto router = make_router(std::move(options));
        const AnalysisOutcome outcome = analyse(*router, request_with());
        CHECK(outcome.is_fallback);
        CHECK(outcome.provider == "builtin");
        CHECK(server.requests("anthropic") + server.requests("openai") == 0);
    }
    SUBCASE("not_cached without the builtin") {
        options.builtin_fallback = false;
        auto router = make_router(std::move(options));
        const AnalysisOutcome outcome = analyse(*router, request_with());
        REQUIRE_FALSE(outcome.verdict);
        CHECK(outcome.verdict.error().kind == "not_cached");
    }
    SUBCASE("the profile equals the online one") {
        auto offline = make_router(std::move(options));
        auto online = make_router(options_for(server, make_open_call_gate()));
        CHECK(offline->profile() == online->profile());
        online->shutdown(0ms);
    }
}

TEST_CASE("Router: shutdown ends requests in flight") {
    TestServer server;
    server.delay = 3s;
    auto router = make_router(options_for(server, make_open_call_gate()));
    std::promise<AnalysisOutcome> promise;
    router->submit(request_with(), [&promise](AnalysisOutcome&& outcome) {
        promise.set_value(std::move(outcome));
    });
    std::this_thread::sleep_for(200ms);

    const auto started = std::chrono::steady_clock::now();
    router->shutdown(100ms);
    const auto waited = std::chrono::steady_clock::now() - started;

    auto future = promise.get_future();
    REQUIRE(future.wait_for(0s) == std::future_status::ready);
    const AnalysisOutcome outcome = future.get();
    REQUIRE_FALSE(outcome.verdict);
    CHECK(outcome.verdict.error().kind == "interrupted");
    CHECK(waited < 2s);
}

TEST_CASE("Router: rejects unusable options") {
    RouterOptions options;
    CHECK_FALSE(make_provider_router(options, make_builtin_analyser("")).has_value());
    options.providers = {provider("openai", "http://127.0.0.1:9")};
    options.providers[0].model.clear();
    const auto result = make_provider_router(options, make_builtin_analyser(""));
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().kind == "usage");
    CHECK(result.error().message.find("--openai-model") != std::string::npos);
}

TEST_CASE("Router: drain starts no new request") {
    TestServer server;
    server.delay = 300ms;
    RouterOptions options = options_for(server, make_open_call_gate());
    options.max_concurrency = 1;
    auto router = make_router(std::move(options));
    std::vector<std::promise<AnalysisOutcome>> promises(3);
    for (auto& promise : promises) {
        router->submit(request_with(), [&promise](AnalysisOutcome&& outcome) {
            promise.set_value(std::move(outcome));
        });
    }
    std::this_thread::sleep_for(100ms);

    router->shutdown(2s);

    const AnalysisOutcome first = promises[0].get_future().get();
    CHECK(first.verdict.has_value());
    for (std::size_t i = 1; i < promises.size(); ++i) {
        const AnalysisOutcome queued = promises[i].get_future().get();
        REQUIRE_FALSE(queued.verdict);
        CHECK(queued.verdict.error().kind == "interrupted");
    }
    CHECK(server.requests("anthropic") == 1);
}

TEST_CASE("Router: gate timers run while requests hang") {
    // A gate that asks for one timer 100 ms after the first admission.
    class TimerGate final : public CallGate {
    public:
        std::optional<Result<std::unique_ptr<CallPermit>>> admit(const std::string&,
                                                                 AdmitCallback) override {
            if (!deadline) {
                deadline = std::chrono::steady_clock::now() + 100ms;
            }
            return Result<std::unique_ptr<CallPermit>>(std::make_unique<CallPermit>());
        }
        void record(std::unique_ptr<CallPermit>, CallOutcome, std::chrono::milliseconds) override {}
        std::optional<SteadyTime> next_deadline() const override {
            return fired ? std::nullopt : deadline;
        }
        void on_timer(SteadyTime now) override {
            fired = true;
            late_by = now - *deadline;
        }

        std::optional<SteadyTime> deadline;
        std::atomic<bool> fired{false};
        SteadyTime::duration late_by{};
    };
    TestServer server;
    server.delay = 1s;
    auto gate = std::make_shared<TimerGate>();
    auto router = make_router(options_for(server, gate));
    std::promise<AnalysisOutcome> promise;
    router->submit(request_with(), [&promise](AnalysisOutcome&& outcome) {
        promise.set_value(std::move(outcome));
    });

    std::this_thread::sleep_for(500ms);
    const bool fired_while_in_flight = gate->fired;
    promise.get_future().wait();
    router->shutdown(0ms);

    CHECK(fired_while_in_flight);
    CHECK(gate->late_by < 200ms);
}
