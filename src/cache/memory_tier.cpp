#include <athena/cache.hpp>

#include <list>
#include <mutex>
#include <unordered_map>

namespace athena {
namespace {

struct KeyHash {
    std::size_t operator()(const CacheKey& key) const {
        return std::hash<std::string>{}(key.sha256) ^ (std::hash<std::string>{}(key.profile) << 1);
    }
};

// An LRU list plus an index into it. One mutex guards both: every operation touches the list
// order, so a reader-writer lock would not let readers run in parallel anyway.
class MemoryTier final : public CacheTier {
public:
    explicit MemoryTier(std::size_t max_entries) : m_max_entries(max_entries) {}

    std::string name() const override { return "memory"; }

    Result<std::vector<std::optional<CacheEntry>>>
    lookup(std::span<const CacheKey> keys) override {
        std::vector<std::optional<CacheEntry>> found(keys.size());
        std::lock_guard lock(m_mutex);
        for (std::size_t i = 0; i < keys.size(); ++i) {
            const auto it = m_index.find(keys[i]);
            if (it == m_index.end()) {
                ++m_stats.misses;
                continue;
            }
            m_order.splice(m_order.begin(), m_order, it->second);
            found[i] = it->second->second;
            ++m_stats.hits;
        }
        return found;
    }

    Result<void> store(std::span<const std::pair<CacheKey, CacheEntry>> entries) override {
        std::lock_guard lock(m_mutex);
        for (const auto& [key, entry] : entries) {
            if (m_max_entries == 0) {
                break;
            }
            const auto it = m_index.find(key);
            if (it != m_index.end()) {
                it->second->second = entry;
                m_order.splice(m_order.begin(), m_order, it->second);
            } else {
                m_order.emplace_front(key, entry);
                m_index.emplace(key, m_order.begin());
                if (m_order.size() > m_max_entries) {
                    m_index.erase(m_order.back().first);
                    m_order.pop_back();
                }
            }
            ++m_stats.stores;
        }
        return {};
    }

    TierStats stats() const override {
        std::lock_guard lock(m_mutex);
        TierStats out = m_stats;
        out.entries = m_order.size();
        return out;
    }

private:
    using Order = std::list<std::pair<CacheKey, CacheEntry>>;

    const std::size_t m_max_entries;
    mutable std::mutex m_mutex;
    Order m_order; // most recently used first
    std::unordered_map<CacheKey, Order::iterator, KeyHash> m_index;
    TierStats m_stats;
};

} // namespace

std::unique_ptr<CacheTier> make_memory_tier(std::size_t max_entries) {
    return std::make_unique<MemoryTier>(max_entries);
}

} // namespace athena
