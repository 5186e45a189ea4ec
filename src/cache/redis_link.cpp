// Redis URLs, and the pooled hiredis connections of one run.
#include <athena/redis_cache.hpp>

#include <hiredis/hiredis.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <csignal>
#include <cstring>
#include <random>

#include <pthread.h>
#include <sys/time.h>
#include <unistd.h>

namespace athena {
namespace {

constexpr std::string_view k_masked = "********";
constexpr const char* k_url_forms =
    "expected redis://[[user]:password@]host[:port][/db] or unix:///path/to.sock[?db=N]";

std::string to_lower(std::string_view text) {
    std::string lower(text);
    for (char& c : lower) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return lower;
}

int hex_value(char digit) {
    if (digit >= '0' && digit <= '9') {
        return digit - '0';
    }
    const char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(digit)));
    if (lower >= 'a' && lower <= 'f') {
        return lower - 'a' + 10;
    }
    return -1;
}

// Decodes %XX escapes. The text may be a password, so the error names no part of it.
Result<std::string> percent_decode(std::string_view text, std::string_view what) {
    std::string decoded;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            decoded += text[i];
            continue;
        }
        const int high = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
        const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (high < 0 || low < 0) {
            return fail("usage", fmt::format("invalid Redis URL: the {} has a '%' that is not "
                                             "followed by two hex digits",
                                             what));
        }
        decoded += static_cast<char>(high * 16 + low);
        i += 2;
    }
    return decoded;
}

Result<int> parse_number(std::string_view text, std::string_view what, int minimum, int maximum) {
    int number = 0;
    const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (text.empty() || status != std::errc() || end != text.data() + text.size() ||
        number < minimum || number > maximum) {
        return fail("usage", fmt::format("invalid Redis URL: {} '{}' is not a number from {} "
                                         "to {} ({})",
                                         what, text, minimum, maximum, k_url_forms));
    }
    return number;
}

// Applies "user:password", ":password" or "user" to the options.
Result<void> apply_userinfo(std::string_view userinfo, RedisOptions& options) {
    const auto colon = userinfo.find(':');
    auto username = percent_decode(userinfo.substr(0, colon), "user name");
    if (!username) {
        return std::unexpected(username.error());
    }
    options.username = std::move(*username);
    if (colon != std::string_view::npos) {
        auto password = percent_decode(userinfo.substr(colon + 1), "password");
        if (!password) {
            return std::unexpected(password.error());
        }
        options.password = std::move(*password);
    }
    return {};
}

// Applies "?db=N"; other parameters are rejected so that a typo is not silently ignored.
Result<void> apply_query(std::string_view query, RedisOptions& options) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view parameter = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
        const auto equals = parameter.find('=');
        const std::string_view name = parameter.substr(0, equals);
        if (name != "db" || equals == std::string_view::npos) {
            return fail("usage", fmt::format("invalid Redis URL: unknown parameter '{}' (only "
                                             "db=N is understood)",
                                             name));
        }
        auto db = parse_number(parameter.substr(equals + 1), "database", 0, 1 << 20);
        if (!db) {
            return std::unexpected(db.error());
        }
        options.db = *db;
    }
    return {};
}

// host, [host]:port, host:port, [::1]
Result<void> apply_host_port(std::string_view authority, RedisOptions& options) {
    std::string_view host = authority;
    std::string_view port;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return fail("usage", fmt::format("invalid Redis URL: '[' without ']' in the host "
                                             "({})",
                                             k_url_forms));
        }
        host = authority.substr(1, close - 1);
        const std::string_view rest = authority.substr(close + 1);
        if (!rest.empty() && !rest.starts_with(':')) {
            return fail("usage", fmt::format("invalid Redis URL: unexpected text after the host "
                                             "({})",
                                             k_url_forms));
        }
        port = rest.empty() ? rest : rest.substr(1);
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (!host.empty()) {
        options.host = std::string(host);
    }
    if (!port.empty()) {
        auto number = parse_number(port, "port", 1, 65535);
        if (!number) {
            return std::unexpected(number.error());
        }
        options.port = *number;
    }
    options.socket_path.clear();
    return {};
}

Result<RedisOptions> parse_unix_url(std::string_view rest, RedisOptions options) {
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) {
        return fail("usage", fmt::format("invalid Redis URL: a unix socket URL needs an "
                                         "absolute path ({})",
                                         k_url_forms));
    }
    const std::string_view before_path = rest.substr(0, slash);
    if (const auto at = before_path.rfind('@'); at != std::string_view::npos) {
        if (auto ok = apply_userinfo(before_path.substr(0, at), options); !ok) {
            return std::unexpected(ok.error());
        }
    } else if (!before_path.empty()) {
        return fail("usage", fmt::format("invalid Redis URL: a unix socket URL takes no host "
                                         "({})",
                                         k_url_forms));
    }
    std::string_view path = rest.substr(slash);
    if (const auto question = path.find('?'); question != std::string_view::npos) {
        if (auto ok = apply_query(path.substr(question + 1), options); !ok) {
            return std::unexpected(ok.error());
        }
        path = path.substr(0, question);
    }
    if (path.size() < 2) {
        return fail("usage",
                    fmt::format("invalid Redis URL: the socket path is empty ({})", k_url_forms));
    }
    options.socket_path = std::string(path);
    return options;
}

Result<RedisOptions> parse_tcp_url(std::string_view rest, RedisOptions options) {
    const auto authority_end = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, authority_end);
    std::string_view tail =
        authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);

    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
        if (auto ok = apply_userinfo(authority.substr(0, at), options); !ok) {
            return std::unexpected(ok.error());
        }
        authority = authority.substr(at + 1);
    }
    if (auto ok = apply_host_port(authority, options); !ok) {
        return std::unexpected(ok.error());
    }

    std::string_view query;
    if (const auto question = tail.find('?'); question != std::string_view::npos) {
        query = tail.substr(question + 1);
        tail = tail.substr(0, question);
    }
    if (tail.size() > 1) {
        auto db = parse_number(tail.substr(1), "database", 0, 1 << 20);
        if (!db) {
            return std::unexpected(db.error());
        }
        options.db = *db;
    }
    if (auto ok = apply_query(query, options); !ok) {
        return std::unexpected(ok.error());
    }
    return options;
}

std::string format_timeout(std::chrono::milliseconds timeout) {
    return fmt::format("{} ms", timeout.count());
}

timeval to_timeval(std::chrono::milliseconds duration) {
    const auto ms = std::max<std::int64_t>(1, duration.count());
    return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

RedisReply copy_reply(const redisReply& reply) {
    RedisReply copy;
    switch (reply.type) {
    case REDIS_REPLY_STRING:
        copy.type = RedisReply::Type::string;
        copy.text.assign(reply.str, reply.len);
        break;
    case REDIS_REPLY_STATUS:
        copy.type = RedisReply::Type::status;
        copy.text.assign(reply.str, reply.len);
        break;
    case REDIS_REPLY_ERROR:
        copy.type = RedisReply::Type::error;
        copy.text.assign(reply.str, reply.len);
        break;
    case REDIS_REPLY_INTEGER:
        copy.type = RedisReply::Type::integer;
        copy.integer = reply.integer;
        break;
    case REDIS_REPLY_ARRAY:
        copy.type = RedisReply::Type::array;
        copy.elements.reserve(reply.elements);
        for (std::size_t i = 0; i < reply.elements; ++i) {
            copy.elements.push_back(copy_reply(*reply.element[i]));
        }
        break;
    default:
        copy.type = RedisReply::Type::nil;
        break;
    }
    return copy;
}

// hiredis 0.14 writes with write(2), which raises SIGPIPE when Redis has gone away; the
// default action would end athena. The signal is blocked on this thread while hiredis
// writes, and a SIGPIPE raised meanwhile is consumed, so the write fails with EPIPE instead.
// Other threads and the process-wide disposition stay as they were.
class SigpipeGuard {
public:
    SigpipeGuard() {
        sigset_t pending;
        sigemptyset(&pending);
        sigpending(&pending);
        m_was_pending = sigismember(&pending, SIGPIPE) == 1;
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGPIPE);
        m_is_blocked = pthread_sigmask(SIG_BLOCK, &block, &m_previous) == 0;
    }
    ~SigpipeGuard() {
        if (!m_is_blocked) {
            return;
        }
        if (!m_was_pending) {
            sigset_t pending;
            sigemptyset(&pending);
            sigpending(&pending);
            if (sigismember(&pending, SIGPIPE) == 1) {
                sigset_t only_pipe;
                sigemptyset(&only_pipe);
                sigaddset(&only_pipe, SIGPIPE);
                const timespec no_wait{0, 0};
                (void)sigtimedwait(&only_pipe, nullptr, &no_wait);
            }
        }
        pthread_sigmask(SIG_SETMASK, &m_previous, nullptr);
    }
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;

private:
    sigset_t m_previous{};
    bool m_was_pending = false;
    bool m_is_blocked = false;
};

} // namespace

// One hiredis context with the run's timeouts, authenticated and on the configured
// database. Not thread-safe: the link hands each connection to one thread at a time.
class RedisLink::Connection {
public:
    explicit Connection(redisContext* context) : m_context(context) {}
    ~Connection() { redisFree(m_context); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    static Result<std::unique_ptr<Connection>> open(const RedisOptions& options) {
        const timeval connect_timeout = to_timeval(options.connect_timeout);
        redisContext* context =
            options.socket_path.empty()
                ? redisConnectWithTimeout(options.host.c_str(), options.port, connect_timeout)
                : redisConnectUnixWithTimeout(options.socket_path.c_str(), connect_timeout);
        if (context == nullptr) {
            return fail("cache", "cannot allocate a Redis connection");
        }
        auto connection = std::make_unique<Connection>(context);
        if (context->err != 0) {
            const std::string reason = context->errstr;
            const bool is_timeout = reason.find("timed out") != std::string::npos;
            return fail("cache", "cannot connect: " +
                                     (is_timeout ? "no answer within " +
                                                       format_timeout(options.connect_timeout) +
                                                       " (redis-connect-timeout)"
                                                 : reason));
        }
        if (redisSetTimeout(context, to_timeval(options.command_timeout)) != REDIS_OK) {
            return fail("cache", "cannot set the command timeout");
        }
        (void)redisEnableKeepAlive(context);
        if (auto ok = connection->handshake(options); !ok) {
            return std::unexpected(ok.error());
        }
        return connection;
    }

    // Sends every command in one write, then reads the replies in order.
    Result<std::vector<RedisReply>> pipeline(std::span<const RedisCommand> commands,
                                             std::chrono::milliseconds command_timeout) {
        SigpipeGuard guard;
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (const RedisCommand& command : commands) {
            argv.clear();
            lengths.clear();
            for (const std::string& argument : command) {
                argv.push_back(argument.data());
                lengths.push_back(argument.size());
            }
            if (redisAppendCommandArgv(m_context, static_cast<int>(argv.size()), argv.data(),
                                       lengths.data()) != REDIS_OK) {
                return io_error(command_timeout);
            }
        }
        std::vector<RedisReply> replies;
        replies.reserve(commands.size());
        for (std::size_t i = 0; i < commands.size(); ++i) {
            void* raw = nullptr;
            if (redisGetReply(m_context, &raw) != REDIS_OK || raw == nullptr) {
                return io_error(command_timeout);
            }
            replies.push_back(copy_reply(*static_cast<redisReply*>(raw)));
            freeReplyObject(raw);
        }
        return replies;
    }

private:
    std::unexpected<Error> io_error(std::chrono::milliseconds command_timeout) const {
        const std::string reason = m_context->errstr;
        const bool is_timeout = reason.find("temporarily unavailable") != std::string::npos ||
                                reason.find("timed out") != std::string::npos;
        return fail("cache", is_timeout ? "no reply within " + format_timeout(command_timeout) +
                                              " (redis-command-timeout)"
                                        : reason);
    }

    Result<void> handshake(const RedisOptions& options) {
        std::vector<RedisCommand> commands;
        if (!options.password.empty()) {
            commands.push_back(options.username.empty()
                                   ? RedisCommand{"AUTH", options.password}
                                   : RedisCommand{"AUTH", options.username, options.password});
        }
        if (options.db != 0) {
            commands.push_back({"SELECT", std::to_string(options.db)});
        }
        commands.push_back({"PING"});
        auto replies = pipeline(commands, options.command_timeout);
        if (!replies) {
            return std::unexpected(replies.error());
        }
        std::size_t index = 0;
        if (!options.password.empty()) {
            const RedisReply& auth = (*replies)[index++];
            if (auth.is_error()) {
                return fail("cache", "authentication failed: " + auth.text +
                                         " (check REDIS_PASSWORD, redis-password or the "
                                         "password in the Redis URL)");
            }
        }
        if (options.db != 0) {
            const RedisReply& select = (*replies)[index++];
            if (select.is_error()) {
                return fail("cache",
                            fmt::format("cannot select database {}: {}", options.db, select.text));
            }
        }
        const RedisReply& ping = (*replies)[index];
        if (ping.is_error()) {
            return fail("cache", ping.text.starts_with("NOAUTH")
                                     ? "the server requires a password (set REDIS_PASSWORD, "
                                       "redis-password or the password in the Redis URL)"
                                     : "ping failed: " + ping.text);
        }
        return {};
    }

    redisContext* m_context;
};

Result<RedisOptions> parse_redis_url(std::string_view url, RedisOptions base) {
    const auto separator = url.find("://");
    if (separator == std::string_view::npos) {
        return fail("usage", fmt::format("invalid Redis URL: no scheme ({})", k_url_forms));
    }
    const std::string scheme = to_lower(url.substr(0, separator));
    const std::string_view rest = url.substr(separator + 3);
    if (scheme == "redis") {
        return parse_tcp_url(rest, std::move(base));
    }
    if (scheme == "unix") {
        return parse_unix_url(rest, std::move(base));
    }
    if (scheme == "rediss") {
        return fail("usage", "invalid Redis URL: rediss:// needs TLS, which this build's "
                             "hiredis does not have; use redis:// through a TLS tunnel, or a "
                             "unix socket");
    }
    return fail("usage",
                fmt::format("invalid Redis URL: unknown scheme '{}' ({})", scheme, k_url_forms));
}

std::string describe_endpoint(const RedisOptions& options) {
    if (!options.socket_path.empty()) {
        return fmt::format("unix://{}?db={}", options.socket_path, options.db);
    }
    const bool is_ipv6 = options.host.find(':') != std::string::npos;
    const std::string host = is_ipv6 ? "[" + options.host + "]" : options.host;
    return fmt::format("redis://{}:{}/{}", host, options.port, options.db);
}

RedisLink::RedisLink(RedisOptions options, Warn warn, std::string down_note)
    : m_options(std::move(options)), m_warn(std::move(warn)), m_down_note(std::move(down_note)) {}

RedisLink::~RedisLink() = default;

std::string RedisLink::redact(std::string text) const {
    for (const std::string* secret : {&m_options.password, &m_options.secret}) {
        if (secret->empty()) {
            continue;
        }
        for (auto at = text.find(*secret); at != std::string::npos;
             at = text.find(*secret, at + k_masked.size())) {
            text.replace(at, secret->size(), k_masked);
        }
    }
    return text;
}

void RedisLink::warn(const std::string& message) const {
    if (m_warn) {
        m_warn(redact(message));
    }
}

void RedisLink::mark_down(const std::string& reason) {
    m_is_down.store(true, std::memory_order_release);
    {
        std::lock_guard lock(m_pool_mutex);
        m_idle.clear();
    }
    std::call_once(m_warned, [&] {
        warn(fmt::format("Redis at {} failed: {}; this run goes on with the local cache "
                         "tiers{}",
                         describe_endpoint(m_options), reason, m_down_note));
    });
}

Result<std::unique_ptr<RedisLink::Connection>> RedisLink::take_connection() {
    {
        std::lock_guard lock(m_pool_mutex);
        if (!m_idle.empty()) {
            auto connection = std::move(m_idle.back());
            m_idle.pop_back();
            return connection;
        }
    }
    auto opened = Connection::open(m_options);
    if (!opened) {
        const std::string reason = redact(opened.error().message);
        mark_down(reason);
        return fail("cache", fmt::format("Redis at {}: {}", describe_endpoint(m_options), reason));
    }
    return opened;
}

void RedisLink::return_connection(std::unique_ptr<Connection> connection) {
    if (is_down()) {
        return;
    }
    std::lock_guard lock(m_pool_mutex);
    m_idle.push_back(std::move(connection));
}

Result<void> RedisLink::check() {
    auto reply = command({"PING"});
    if (!reply) {
        return std::unexpected(reply.error());
    }
    return {};
}

Result<std::vector<RedisReply>> RedisLink::pipeline(std::span<const RedisCommand> commands) {
    if (is_down()) {
        return fail("cache",
                    fmt::format("Redis at {} is down for this run", describe_endpoint(m_options)));
    }
    auto connection = take_connection();
    if (!connection) {
        return std::unexpected(connection.error());
    }
    auto replies = (*connection)->pipeline(commands, m_options.command_timeout);
    m_counters.round_trips.fetch_add(1, std::memory_order_relaxed);
    if (!replies) {
        const std::string reason = redact(replies.error().message);
        mark_down(reason);
        return fail("cache", fmt::format("Redis at {}: {}", describe_endpoint(m_options), reason));
    }
    return_connection(std::move(*connection));
    return replies;
}

Result<RedisReply> RedisLink::command(RedisCommand command) {
    auto replies = pipeline(std::span(&command, 1));
    if (!replies) {
        return std::unexpected(replies.error());
    }
    return std::move(replies->front());
}

std::string make_runner_id() {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
        std::strcpy(host, "unknown-host");
    }
    std::random_device random;
    return fmt::format("{}:{}:{:08x}", host, ::getpid(), random());
}

} // namespace athena
