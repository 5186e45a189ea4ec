// The provider router: an AnalysisService whose requests run on one event-loop thread.
//
// Threads: submit() runs on pipeline workers. It judges the evidence with the builtin
// analyser and builds the prompt there (CPU work), then posts the job to the loop thread.
// Every other step (dispatch, gate, HTTP, retries, failover, accounting) runs on the loop
// thread, so the job and provider state below needs no lock. shutdown() runs on the
// pipeline's thread and talks to the loop only through posted tasks.
#include "providers/budget.hpp"
#include "providers/http_loop.hpp"
#include "providers/prompt.hpp"
#include "providers/wire.hpp"

#include <athena/providers.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <pthread.h>
#include <unordered_set>

namespace athena {
namespace {

using namespace providers;
using std::chrono::milliseconds;
using Json = nlohmann::ordered_json;

class OpenGate final : public CallGate {
public:
    std::optional<Result<std::unique_ptr<CallPermit>>> admit(const std::string&,
                                                             AdmitCallback) override {
        return Result<std::unique_ptr<CallPermit>>(std::make_unique<CallPermit>());
    }
    void record(std::unique_ptr<CallPermit>, CallOutcome, milliseconds) override {}
};

// One file on its way through the providers. Loop thread only, except where noted.
struct Job {
    // Set by submit() before the job reaches the loop; read-only afterwards.
    std::function<void(AnalysisOutcome&&)> done;
    std::string user_message;
    std::size_t estimated_input_tokens = 0;
    Result<Verdict> builtin = fail("analysis", "not run");
    std::optional<ThreatLevel> floor; // from hard signature hits
    std::vector<std::string> floor_signatures;

    std::size_t provider = 0;  // index into the router's providers
    std::uint32_t attempt = 0; // attempts at this provider that ended in a retry
    milliseconds waited{0};    // sum of retry waits at this provider
    bool has_repaired = false; // the one repair attempt at this provider was made
    std::string rejected_answer;
    std::string repair;
    double reserved_usd = 0.0;

    TokenUsage usage; // over every attempt and provider
    double cost_usd = 0.0;
    std::vector<std::string> failures;
    std::optional<Error> last_error;
    std::string last_provider;
    bool is_finished = false;
};
using JobPtr = std::shared_ptr<Job>;

struct ProviderStats {
    std::uint64_t requests = 0;
    std::uint64_t verdicts = 0;
    std::uint64_t retries = 0;
    std::uint64_t repairs = 0;
    std::uint64_t failovers = 0; // files passed on to the next provider
    std::map<std::string, std::uint64_t> errors_by_kind;
    TokenUsage usage;
    double cost_usd = 0.0;
    std::int64_t latency_total_ms = 0;
    std::int64_t latency_max_ms = 0;
};

struct ProviderState {
    ProviderConfig config;
    std::string disabled_reason; // empty while usable
    SteadyTime cooldown_until{}; // a rate limit's retry-after applies to every file
    ProviderStats stats;
};

void add_usage(TokenUsage& total, const TokenUsage& more) {
    total.input += more.input;
    total.cached_input += more.cached_input;
    total.cache_write += more.cache_write;
    total.output += more.output;
}

Json usage_json(const TokenUsage& usage) {
    return Json{{"input", usage.input},
                {"cached_input", usage.cached_input},
                {"cache_write", usage.cache_write},
                {"output", usage.output}};
}

// Hard signature hits: YARA rules whose authors rated a match malicious or critical.
void find_floor(const Evidence& evidence, Job& job) {
    for (const YaraMatch& match : evidence.yara_matches) {
        const auto level = parse_threat_level(match.severity);
        if (!level || *level < ThreatLevel::malicious) {
            continue;
        }
        job.floor = job.floor ? std::max(*job.floor, *level) : *level;
        job.floor_signatures.push_back(match.rule);
    }
}

// Raises a model's verdict to the floor that hard signature hits set.
void apply_floor(const Job& job, Verdict& verdict) {
    if (!job.floor || verdict.threat_level >= *job.floor) {
        return;
    }
    const std::string_view from = to_string(verdict.threat_level);
    verdict.threat_level = *job.floor;
    if (job.builtin) {
        verdict.confidence = std::max(verdict.confidence, job.builtin->confidence);
        if (verdict.malware_family.empty()) {
            verdict.malware_family = job.builtin->malware_family;
        }
        if (verdict.malware_type.empty()) {
            verdict.malware_type = job.builtin->malware_type;
        }
        for (const std::string& advice : job.builtin->recommendations) {
            if (std::ranges::find(verdict.recommendations, advice) ==
                verdict.recommendations.end()) {
                verdict.recommendations.push_back(advice);
            }
        }
    }
    for (const std::string& rule : job.floor_signatures) {
        if (std::ranges::find(verdict.signatures, rule) == verdict.signatures.end()) {
            verdict.signatures.push_back(rule);
        }
    }
    verdict.summary += fmt::format("{}[level raised from {} to {} by signature {}]",
                                   verdict.summary.empty() ? "" : " ", from, to_string(*job.floor),
                                   fmt::join(job.floor_signatures, ", "));
}

class Router final : public AnalysisService {
public:
    Router(RouterOptions options, std::unique_ptr<Analyser> builtin);
    ~Router() override;

    std::string profile() const override { return m_profile; }
    void submit(AnalysisRequest request, std::function<void(AnalysisOutcome&&)> done) override;
    void shutdown(milliseconds grace) override;
    nlohmann::ordered_json summary_json() const override;
    std::string report_text() const override;

private:
    JobPtr prepare(AnalysisRequest&& request, std::function<void(AnalysisOutcome&&)>&& done);
    void submit_offline(const JobPtr& job);

    // Loop thread.
    void enqueue(JobPtr job);
    void pump();
    bool choose_provider(Job& job);
    void start_attempt(const JobPtr& job);
    void send(const JobPtr& job, std::size_t provider, std::unique_ptr<CallPermit> permit);
    void on_admission(const JobPtr& job, std::size_t provider,
                      Result<std::unique_ptr<CallPermit>> admission);
    void on_response(const JobPtr& job, std::size_t provider, std::unique_ptr<CallPermit> permit,
                     HttpResponse&& response);
    void retry_or_fail(const JobPtr& job, ProviderState& state, AttemptResult&& result);
    void provider_failed(const JobPtr& job, const Error& error);
    void disable(ProviderState& state, const std::string& reason);
    void finish_with_verdict(const JobPtr& job, const ProviderState& state, Verdict verdict);
    void finish_without_ai(const JobPtr& job);
    void finish_with_error(const JobPtr& job, Error error);
    void finish(const JobPtr& job, AnalysisOutcome&& outcome);
    void cancel_everything();
    void note_if_idle();
    double estimate_cost(const Job& job, const ProviderState& state) const;

    RouterOptions m_options;
    std::unique_ptr<Analyser> m_builtin;
    std::string m_profile;
    std::shared_ptr<CallGate> m_gate;
    RandomSource m_random;

    // Loop-thread state.
    std::vector<ProviderState> m_providers;
    std::deque<JobPtr> m_ready; // waiting for a concurrency slot (or the budget)
    std::unordered_set<JobPtr> m_live;
    std::size_t m_in_flight = 0;          // HTTP requests and queued admissions
    std::size_t m_requests_in_flight = 0; // HTTP requests only
    bool m_is_draining = false;           // after an interrupt: start nothing new
    std::size_t m_peak_in_flight = 0;
    std::uint64_t m_fallbacks = 0;
    std::uint64_t m_budget_refusals = 0;
    CostBudget m_budget;

    // Shared with submitting threads and shutdown().
    std::shared_ptr<EventLoop> m_loop;
    std::thread m_thread;
    std::atomic<bool> m_stop{false};
    mutable std::mutex m_mutex;          // guards m_outstanding and m_is_closed
    std::condition_variable m_slot_free; // a submitter may go on
    std::condition_variable m_drained;   // m_outstanding reached 0
    std::size_t m_outstanding = 0;       // submitted, not yet done
    bool m_is_closed = false;
    bool m_is_idle = false; // draining, and no request is in flight
    std::size_t m_max_outstanding = 0;
    std::atomic<std::uint64_t> m_offline_answers{0};
};

Router::Router(RouterOptions options, std::unique_ptr<Analyser> builtin)
    : m_options(std::move(options)), m_builtin(std::move(builtin)),
      m_profile(provider_profile(m_options.providers, m_builtin->profile())),
      m_gate(m_options.gate ? m_options.gate : make_open_call_gate()),
      m_random(m_options.random ? m_options.random : default_random_source()),
      m_budget(m_options.max_cost_usd) {
    for (const ProviderConfig& config : m_options.providers) {
        ProviderState state;
        state.config = config;
        if (!config.has_credentials()) {
            state.disabled_reason = "no API key";
        }
        m_providers.push_back(std::move(state));
    }
    // Submissions beyond this wait in submit(), so a huge tree of unseen files cannot pile
    // up evidence in memory faster than the providers answer.
    // NOTE: the router learns of an interrupt only in shutdown(), which the pipeline calls
    // after its workers end. A worker waiting here after Ctrl-C goes on once a request
    // finishes, which can take up to the provider timeout when every request hangs.
    m_max_outstanding = std::max<std::size_t>(256, 8 * m_options.max_concurrency);
    if (m_options.offline) {
        return;
    }
    m_loop = std::make_shared<EventLoop>(m_options.max_concurrency + 8);
    m_loop->set_deadline_source([gate = m_gate] { return gate->next_deadline(); });
    m_loop->set_deadline_handler([gate = m_gate](SteadyTime now) { gate->on_timer(now); });
    m_thread = std::thread([this] { m_loop->run([this] { return m_stop.load(); }); });
    pthread_setname_np(m_thread.native_handle(), "athena-http");
}

Router::~Router() {
    shutdown(milliseconds(0));
}

JobPtr Router::prepare(AnalysisRequest&& request, std::function<void(AnalysisOutcome&&)>&& done) {
    auto job = std::make_shared<Job>();
    job->done = std::move(done);
    job->builtin = m_builtin->analyse(request.evidence);
    find_floor(request.evidence, *job);
    if (!m_options.offline) {
        const EvidenceBundle bundle = build_evidence_bundle(request, m_options.max_input_tokens);
        job->user_message = evidence_message(bundle.json);
        job->estimated_input_tokens = bundle.estimated_tokens;
    }
    return job;
}

void Router::submit(AnalysisRequest request, std::function<void(AnalysisOutcome&&)> done) {
    JobPtr job = prepare(std::move(request), std::move(done));
    if (m_options.offline) {
        submit_offline(job);
        return;
    }
    {
        std::unique_lock lock(m_mutex);
        m_slot_free.wait(lock, [&] { return m_outstanding < m_max_outstanding || m_is_closed; });
        if (m_is_closed) {
            lock.unlock();
            AnalysisOutcome outcome;
            outcome.verdict = fail("interrupted", "the analysis service was shut down");
            job->done(std::move(outcome));
            return;
        }
        ++m_outstanding;
    }
    m_loop->post([this, job] { enqueue(job); });
}

// Offline: the cache already missed, so the answer is the builtin verdict (not cached) or
// an error that says the file is not cached.
void Router::submit_offline(const JobPtr& job) {
    ++m_offline_answers;
    AnalysisOutcome outcome;
    if (m_options.builtin_fallback) {
        outcome.verdict = job->builtin;
        outcome.provider = m_builtin->name();
        outcome.model = m_builtin->model();
        outcome.is_fallback = true;
    } else {
        outcome.verdict = fail("not_cached", "--offline: no cached verdict for this file under "
                                             "the configured providers, and --no-builtin is set");
    }
    job->done(std::move(outcome));
}

void Router::enqueue(JobPtr job) {
    m_live.insert(job);
    if (!choose_provider(*job)) {
        finish_without_ai(job);
        return;
    }
    m_ready.push_back(std::move(job));
    pump();
}

// Moves job.provider to the first usable provider from its current one. Providers without
// a key are always passed over; with failover off, a provider disabled during the run ends
// the file's turn instead.
bool Router::choose_provider(Job& job) {
    while (job.provider < m_providers.size()) {
        const ProviderState& candidate = m_providers[job.provider];
        if (candidate.disabled_reason.empty()) {
            return true;
        }
        if (!m_options.failover && candidate.config.has_credentials()) {
            job.failures.push_back(fmt::format("{}: disabled for this run: {}",
                                               candidate.config.name, candidate.disabled_reason));
            if (!job.last_error) {
                job.last_error = Error{"no_provider", job.failures.back()};
            }
            return false;
        }
        ++job.provider;
    }
    return false;
}

double Router::estimate_cost(const Job& job, const ProviderState& state) const {
    TokenUsage worst;
    worst.input = job.estimated_input_tokens +
                  estimate_tokens(job.rejected_answer.size() + job.repair.size());
    worst.output = state.config.max_output_tokens;
    return cost_usd(worst, state.config.prices);
}

// Starts attempts while there are slots, in arrival order.
void Router::pump() {
    if (m_is_draining) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    while (m_in_flight < m_options.max_concurrency && !m_ready.empty()) {
        JobPtr job = m_ready.front();
        if (job->is_finished) {
            m_ready.pop_front();
            continue;
        }
        if (!choose_provider(*job)) {
            m_ready.pop_front();
            finish_without_ai(job);
            continue;
        }
        ProviderState& state = m_providers[job->provider];
        if (state.cooldown_until > now) {
            m_ready.pop_front();
            m_loop->schedule(state.cooldown_until, [this, job] {
                m_ready.push_back(job);
                pump();
            });
            continue;
        }
        const double estimate = estimate_cost(*job, state);
        const BudgetDecision decision = m_budget.reserve(estimate);
        if (decision == BudgetDecision::wait) {
            return; // resumed when a request in flight settles
        }
        m_ready.pop_front();
        if (decision == BudgetDecision::stop) {
            ++m_budget_refusals;
            finish_with_error(
                job, Error{"budget", fmt::format("not analysed: the run's spend would pass "
                                                 "--max-cost {:.4f} USD (spent {:.4f} USD)",
                                                 *m_budget.limit_usd(), m_budget.spent_usd())});
            continue;
        }
        job->reserved_usd = estimate;
        start_attempt(job);
    }
}

void Router::start_attempt(const JobPtr& job) {
    const std::size_t provider = job->provider;
    ++m_in_flight;
    m_peak_in_flight = std::max(m_peak_in_flight, m_in_flight);
    std::weak_ptr<EventLoop> loop = m_loop;
    auto admission = m_gate->admit(
        m_providers[provider].config.name,
        [this, loop, job, provider](Result<std::unique_ptr<CallPermit>> result) mutable {
            // Any thread: hand the result to the loop thread, or drop it after shutdown.
            if (auto alive = loop.lock()) {
                alive->post([this, job, provider, result = std::move(result)]() mutable {
                    on_admission(job, provider, std::move(result));
                });
            }
        });
    if (admission) {
        on_admission(job, provider, std::move(*admission));
    }
}

void Router::on_admission(const JobPtr& job, std::size_t provider,
                          Result<std::unique_ptr<CallPermit>> admission) {
    if (job->is_finished) {
        return; // cancelled while queued in the gate; the permit is dropped as ignored
    }
    if (admission && m_is_draining) {
        // Granted after the interrupt: give the slot back and leave the job to be ended.
        --m_in_flight;
        m_budget.settle(job->reserved_usd, 0.0);
        job->reserved_usd = 0.0;
        m_ready.push_front(job);
        note_if_idle();
        return;
    }
    if (admission) {
        send(job, provider, std::move(*admission));
        return;
    }
    --m_in_flight;
    m_budget.settle(job->reserved_usd, 0.0);
    job->reserved_usd = 0.0;
    ProviderState& state = m_providers[provider];
    ++state.stats.errors_by_kind[admission.error().kind];
    provider_failed(job, Error{admission.error().kind, fmt::format("{}: {}", state.config.name,
                                                                   admission.error().message)});
    pump();
}

void Router::send(const JobPtr& job, std::size_t provider, std::unique_ptr<CallPermit> permit) {
    ProviderState& state = m_providers[provider];
    Conversation conversation;
    conversation.system = system_prompt();
    conversation.user = job->user_message;
    conversation.rejected_answer = job->rejected_answer;
    conversation.repair = job->repair;
    conversation.max_output_tokens = state.config.max_output_tokens;
    TransferLimits limits{state.config.timeout, state.config.connect_timeout,
                          state.config.stall_timeout};
    ++state.stats.requests;
    ++m_requests_in_flight;
    job->last_provider = state.config.name;
    m_loop->send(
        build_request(state.config, conversation), limits,
        [this, job, provider, permit = std::move(permit)](HttpResponse&& response) mutable {
            on_response(job, provider, std::move(permit), std::move(response));
        });
}

void Router::on_response(const JobPtr& job, std::size_t provider,
                         std::unique_ptr<CallPermit> permit, HttpResponse&& response) {
    --m_in_flight;
    --m_requests_in_flight;
    ProviderState& state = m_providers[provider];
    if (response.is_cancelled) {
        m_gate->record(std::move(permit), CallOutcome::ignored, response.latency);
        m_budget.settle(job->reserved_usd, 0.0);
        finish_with_error(job, Error{"interrupted", "the run was stopped while the request to " +
                                                        state.config.name + " was in flight"});
        return;
    }

    AttemptResult result =
        interpret_response(state.config, response, std::chrono::system_clock::now());
    m_gate->record(std::move(permit), result.outcome, response.latency);
    const double cost = cost_usd(result.usage, state.config.prices);
    m_budget.settle(job->reserved_usd, cost);
    job->reserved_usd = 0.0;
    add_usage(job->usage, result.usage);
    job->cost_usd += cost;
    add_usage(state.stats.usage, result.usage);
    state.stats.cost_usd += cost;
    state.stats.latency_total_ms += response.latency.count();
    state.stats.latency_max_ms = std::max(state.stats.latency_max_ms, response.latency.count());

    if (result.failure == FailureClass::none) {
        ++state.stats.verdicts;
        finish_with_verdict(job, state, std::move(*result.verdict));
    } else {
        ++state.stats.errors_by_kind[result.error.kind];
        retry_or_fail(job, state, std::move(result));
    }
    pump();
    note_if_idle();
}

// Tells a draining shutdown() that nothing more will finish by itself.
void Router::note_if_idle() {
    if (!m_is_draining || m_requests_in_flight > 0) {
        return;
    }
    {
        std::lock_guard lock(m_mutex);
        m_is_idle = true;
    }
    m_drained.notify_all();
}

void Router::retry_or_fail(const JobPtr& job, ProviderState& state, AttemptResult&& result) {
    switch (result.failure) {
    case FailureClass::transient: {
        const milliseconds wait = result.retry_after.value_or(
            backoff_delay(m_options.retry.backoff, job->attempt, m_random));
        if (job->attempt >= m_options.retry.max_retries ||
            job->waited + wait > m_options.retry.max_total_wait) {
            provider_failed(job, result.error);
            return;
        }
        ++job->attempt;
        job->waited += wait;
        ++state.stats.retries;
        const auto at = std::chrono::steady_clock::now() + wait;
        if (result.retry_after && result.error.kind == "rate_limited") {
            state.cooldown_until = std::max(state.cooldown_until, at);
        }
        m_loop->schedule(at, [this, job] {
            m_ready.push_back(job);
            pump();
        });
        return;
    }
    case FailureClass::rejected_answer:
        if (!job->has_repaired) {
            job->has_repaired = true;
            job->rejected_answer = result.answer_text;
            job->repair = repair_message(result.reason);
            ++state.stats.repairs;
            m_ready.push_back(job);
            return;
        }
        provider_failed(job, result.error);
        return;
    case FailureClass::quota:
        disable(state, "quota exhausted: " + result.error.message);
        provider_failed(job, result.error);
        return;
    case FailureClass::auth:
        disable(state, "authentication failed: " + result.error.message);
        provider_failed(job, result.error);
        return;
    case FailureClass::none:
    case FailureClass::request:
    case FailureClass::bad_response:
    case FailureClass::refused:
        provider_failed(job, result.error);
        return;
    }
}

void Router::disable(ProviderState& state, const std::string& reason) {
    if (!state.disabled_reason.empty()) {
        return;
    }
    state.disabled_reason = reason;
    if (m_options.warn) {
        m_options.warn(
            fmt::format("{}; {} is disabled for the rest of this run", reason, state.config.name));
    }
}

// This provider is done with the file: on to the next one, or to the fallback.
void Router::provider_failed(const JobPtr& job, const Error& error) {
    job->failures.push_back(error.message);
    job->last_error = error;
    job->attempt = 0;
    job->waited = milliseconds(0);
    job->has_repaired = false;
    job->rejected_answer.clear();
    job->repair.clear();

    ProviderState& state = m_providers[job->provider];
    if (m_options.failover) {
        ++job->provider;
        if (choose_provider(*job)) {
            ++state.stats.failovers;
            m_ready.push_back(job);
            return;
        }
    }
    finish_without_ai(job);
}

void Router::finish_with_verdict(const JobPtr& job, const ProviderState& state, Verdict verdict) {
    apply_floor(*job, verdict);
    AnalysisOutcome outcome;
    outcome.verdict = std::move(verdict);
    outcome.provider = state.config.name;
    outcome.model = state.config.model;
    finish(job, std::move(outcome));
}

void Router::finish_without_ai(const JobPtr& job) {
    if (m_options.builtin_fallback) {
        ++m_fallbacks;
        AnalysisOutcome outcome;
        outcome.verdict = job->builtin;
        outcome.provider = m_builtin->name();
        outcome.model = m_builtin->model();
        outcome.is_fallback = true;
        finish(job, std::move(outcome));
        return;
    }
    Error error = job->last_error.value_or(
        Error{"no_provider", "no AI provider is available, and --no-builtin is set"});
    if (job->failures.size() > 1) {
        error.message = fmt::format("every provider failed: {}", fmt::join(job->failures, "; "));
    }
    finish_with_error(job, std::move(error));
}

void Router::finish_with_error(const JobPtr& job, Error error) {
    AnalysisOutcome outcome;
    outcome.verdict = std::unexpected(std::move(error));
    outcome.provider = job->last_provider;
    if (!job->last_provider.empty()) {
        for (const ProviderState& state : m_providers) {
            if (state.config.name == job->last_provider) {
                outcome.model = state.config.model;
            }
        }
    }
    finish(job, std::move(outcome));
}

void Router::finish(const JobPtr& job, AnalysisOutcome&& outcome) {
    if (job->is_finished) {
        return;
    }
    job->is_finished = true;
    outcome.usage = job->usage;
    // Rounded to a billionth of a dollar, so records show 0.004518, not 0.0045179999999999994.
    outcome.cost_usd = std::round(job->cost_usd * 1e9) / 1e9;
    m_live.erase(job);
    job->done(std::move(outcome));
    bool is_drained = false;
    {
        std::lock_guard lock(m_mutex);
        --m_outstanding;
        is_drained = m_outstanding == 0;
    }
    // One finished job frees one slot, so one waiting submitter is enough to wake.
    m_slot_free.notify_one();
    if (is_drained) {
        m_drained.notify_all();
    }
}

// Loop thread: ends every transfer and every waiting job with "interrupted".
void Router::cancel_everything() {
    m_loop->cancel_all();
    m_ready.clear();
    const std::vector<JobPtr> waiting(m_live.begin(), m_live.end());
    for (const JobPtr& job : waiting) {
        finish_with_error(job, Error{"interrupted", "the run was stopped before an AI "
                                                    "provider answered"});
    }
}

void Router::shutdown(milliseconds grace) {
    if (!m_loop || m_stop.load()) {
        return;
    }
    // An interrupt gives the requests in flight `grace` to finish, but starts no new one:
    // queued files, retries and repairs wait and end as interrupted.
    std::unique_lock lock(m_mutex);
    if (grace > milliseconds(0) && m_outstanding > 0) {
        lock.unlock();
        m_loop->post([this] {
            m_is_draining = true;
            note_if_idle();
        });
        lock.lock();
        m_drained.wait_for(lock, grace, [&] { return m_outstanding == 0 || m_is_idle; });
    }
    m_is_closed = true;
    lock.unlock();
    m_slot_free.notify_all();
    m_loop->post([this] {
        cancel_everything();
        m_stop = true;
    });
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

nlohmann::ordered_json Router::summary_json() const {
    Json providers = Json::array();
    TokenUsage total_usage;
    double total_cost = 0.0;
    for (const ProviderState& state : m_providers) {
        const ProviderStats& stats = state.stats;
        Json errors = Json::object();
        for (const auto& [kind, count] : stats.errors_by_kind) {
            errors[kind] = count;
        }
        add_usage(total_usage, stats.usage);
        total_cost += stats.cost_usd;
        const double mean_ms = stats.requests == 0 ? 0.0
                                                   : static_cast<double>(stats.latency_total_ms) /
                                                         static_cast<double>(stats.requests);
        providers.push_back(
            {{"name", state.config.name},
             {"model", state.config.model},
             {"base_url", redact_url(state.config.base_url)},
             {"disabled",
              state.disabled_reason.empty() ? Json(nullptr) : Json(state.disabled_reason)},
             {"requests", stats.requests},
             {"verdicts", stats.verdicts},
             {"retries", stats.retries},
             {"repairs", stats.repairs},
             {"failovers", stats.failovers},
             {"errors_by_kind", errors},
             {"tokens", usage_json(stats.usage)},
             {"cost_usd", stats.cost_usd},
             {"latency_ms",
              {{"mean", std::round(mean_ms * 10) / 10}, {"max", stats.latency_max_ms}}}});
    }
    Json budget = {
        {"max_cost_usd", m_budget.limit_usd() ? Json(*m_budget.limit_usd()) : Json(nullptr)},
        {"stopped", m_budget.is_stopped()},
        {"files_refused", m_budget_refusals}};
    Json summary = {{"mode", m_options.offline ? "offline" : "ai"},
                    {"prompt_version", k_prompt_version},
                    {"providers", providers},
                    {"fallbacks", m_fallbacks + m_offline_answers.load()},
                    {"peak_in_flight", m_peak_in_flight},
                    {"tokens", usage_json(total_usage)},
                    {"cost_usd", total_cost},
                    {"budget", budget}};
    if (Json gate = m_gate->summary_json(); !gate.empty()) {
        summary["resilience"] = std::move(gate);
    }
    return summary;
}

std::string Router::report_text() const {
    if (m_options.offline) {
        return fmt::format("ai        offline: {} files not in the cache got {}\n",
                           m_offline_answers.load(),
                           m_options.builtin_fallback ? "the builtin verdict" : "an error");
    }
    std::string out;
    double total_cost = 0.0;
    for (const ProviderState& state : m_providers) {
        const ProviderStats& stats = state.stats;
        total_cost += stats.cost_usd;
        std::string errors;
        for (const auto& [kind, count] : stats.errors_by_kind) {
            errors += fmt::format("{}{} {}", errors.empty() ? "; errors: " : ", ", count, kind);
        }
        out += fmt::format("ai        {}/{}: {} requests, {} verdicts, {} retries, {} repairs, "
                           "{} failovers{}; tokens {} in, {} cached, {} out; {:.4f} USD\n",
                           state.config.name, state.config.model, stats.requests, stats.verdicts,
                           stats.retries, stats.repairs, stats.failovers, errors,
                           stats.usage.input + stats.usage.cache_write, stats.usage.cached_input,
                           stats.usage.output, stats.cost_usd);
        if (!state.disabled_reason.empty()) {
            out += fmt::format("ai        {} disabled: {}\n", state.config.name,
                               state.disabled_reason);
        }
    }
    out += fmt::format("ai        {} builtin fallbacks; peak {} requests in flight; spend "
                       "{:.4f} USD",
                       m_fallbacks, m_peak_in_flight, total_cost);
    if (m_budget.limit_usd()) {
        out += fmt::format(" of --max-cost {:.4f}{}", *m_budget.limit_usd(),
                           m_budget.is_stopped()
                               ? fmt::format(", reached: {} files not analysed", m_budget_refusals)
                               : "");
    }
    return out + "\n" + m_gate->report_text();
}

} // namespace

std::shared_ptr<CallGate> make_open_call_gate() {
    return std::make_shared<OpenGate>();
}

Result<std::unique_ptr<AnalysisService>> make_provider_router(RouterOptions options,
                                                              std::unique_ptr<Analyser> builtin) {
    if (options.providers.empty()) {
        return fail("usage", "no AI provider is configured; set --providers");
    }
    if (options.max_concurrency == 0) {
        return fail("usage", "--max-concurrency must be at least 1");
    }
    for (const ProviderConfig& provider : options.providers) {
        if (provider.model.empty()) {
            return fail("usage", fmt::format("provider {} has no model; set --{}-model",
                                             provider.name, provider.name));
        }
        if (provider.base_url.empty()) {
            return fail("usage", fmt::format("provider {} has no base URL; set --{}-base-url",
                                             provider.name, provider.name));
        }
    }
    if (auto ok = validate_backoff_config(options.retry.backoff, "provider retries"); !ok) {
        return std::unexpected(ok.error());
    }
    return std::unique_ptr<AnalysisService>(
        std::make_unique<Router>(std::move(options), std::move(builtin)));
}

} // namespace athena
