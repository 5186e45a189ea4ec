// Circuit breaker openings shared between runners through Redis.
#include <athena/redis_cache.hpp>

#include <fmt/format.h>

namespace athena {
namespace {

Result<void> require_writable(const RedisLink& link) {
    if (link.options().is_read_only) {
        return fail("usage", "Redis is read-only for this runner (redis-read-only)");
    }
    return {};
}

} // namespace

RedisProviderMarks::RedisProviderMarks(std::shared_ptr<RedisLink> link, std::string runner_id,
                                       std::chrono::milliseconds cache_for)
    : m_link(std::move(link)), m_runner_id(std::move(runner_id)), m_cache_for(cache_for) {}

std::string RedisProviderMarks::mark_key(const std::string& provider) const {
    return m_link->options().key_prefix + "breaker:" + provider;
}

Result<void> RedisProviderMarks::mark_provider_open(const std::string& provider,
                                                    std::chrono::milliseconds ttl) {
    if (auto writable = require_writable(*m_link); !writable) {
        return writable;
    }
    const auto ttl_ms = std::max<std::int64_t>(1, ttl.count());
    auto reply =
        m_link->command({"SET", mark_key(provider), m_runner_id, "PX", std::to_string(ttl_ms)});
    if (!reply) {
        return std::unexpected(reply.error());
    }
    if (reply->is_error()) {
        return fail("cache", fmt::format("cannot mark provider {} open in Redis: {}", provider,
                                         m_link->redact(reply->text)));
    }
    std::lock_guard lock(m_mutex);
    m_cache[provider] = Cached{true, std::chrono::steady_clock::now() + m_cache_for};
    return {};
}

bool RedisProviderMarks::is_provider_open(const std::string& provider) {
    const auto now = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(m_mutex);
        if (const auto cached = m_cache.find(provider);
            cached != m_cache.end() && cached->second.until > now) {
            return cached->second.is_open;
        }
    }
    auto reply = m_link->command({"EXISTS", mark_key(provider)});
    const bool is_open = reply && reply->type == RedisReply::Type::integer && reply->integer > 0;
    std::lock_guard lock(m_mutex);
    m_cache[provider] = Cached{is_open, now + m_cache_for};
    return is_open;
}

Result<void> RedisProviderMarks::clear_provider_mark(const std::string& provider) {
    if (auto writable = require_writable(*m_link); !writable) {
        return writable;
    }
    auto reply = m_link->command({"DEL", mark_key(provider)});
    if (!reply) {
        return std::unexpected(reply.error());
    }
    if (reply->is_error()) {
        return fail("cache", fmt::format("cannot clear the open mark of provider {} in Redis: {}",
                                         provider, m_link->redact(reply->text)));
    }
    std::lock_guard lock(m_mutex);
    m_cache[provider] = Cached{false, std::chrono::steady_clock::now() + m_cache_for};
    return {};
}

} // namespace athena
