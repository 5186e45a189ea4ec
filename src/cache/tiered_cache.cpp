#include <athena/tiered_cache.hpp>

namespace athena {

TieredCache::TieredCache(std::vector<std::unique_ptr<CacheTier>> tiers)
    : m_tiers(std::move(tiers)) {}

std::vector<TieredLookup> TieredCache::lookup(std::span<const CacheKey> keys) {
    std::vector<TieredLookup> results(keys.size());
    std::vector<std::size_t> pending(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        pending[i] = i;
    }
    std::map<std::string, std::uint64_t> hits_by_tier;
    std::vector<Error> errors;

    for (std::size_t level = 0; level < m_tiers.size() && !pending.empty(); ++level) {
        CacheTier& tier = *m_tiers[level];
        std::vector<CacheKey> asked;
        asked.reserve(pending.size());
        for (const std::size_t index : pending) {
            asked.push_back(keys[index]);
        }
        auto found = tier.lookup(asked);
        if (!found) {
            errors.push_back(found.error());
            continue;
        }

        std::vector<std::size_t> still_pending;
        std::vector<std::pair<CacheKey, CacheEntry>> promoted;
        for (std::size_t k = 0; k < asked.size(); ++k) {
            auto& slot = (*found)[k];
            const std::size_t index = pending[k];
            if (!slot) {
                still_pending.push_back(index);
                continue;
            }
            if (level > 0) {
                promoted.emplace_back(keys[index], *slot);
            }
            results[index].entry = std::move(slot);
            results[index].tier = tier.name();
            ++hits_by_tier[tier.name()];
        }
        // Promotion is best effort: a failing upper tier only loses the speed-up.
        for (std::size_t upper = 0; upper < level && !promoted.empty(); ++upper) {
            if (auto ok = m_tiers[upper]->store(promoted); !ok) {
                errors.push_back(ok.error());
            }
        }
        pending = std::move(still_pending);
    }

    std::lock_guard lock(m_mutex);
    for (const auto& [name, count] : hits_by_tier) {
        m_stats.hits_by_tier[name] += count;
        m_stats.hits += count;
    }
    m_stats.misses += pending.size();
    m_stats.tier_errors += errors.size();
    for (Error& error : errors) {
        m_errors.push_back(std::move(error));
    }
    return results;
}

Result<void> TieredCache::store(std::span<const std::pair<CacheKey, CacheEntry>> entries) {
    Result<void> first_result;
    for (const auto& tier : m_tiers) {
        auto ok = tier->store(entries);
        if (!ok && first_result) {
            first_result = ok;
        }
    }
    return first_result;
}

void TieredCache::store_above(const std::string& tier_name,
                              std::span<const std::pair<CacheKey, CacheEntry>> entries) {
    for (const auto& tier : m_tiers) {
        if (tier->name() == tier_name) {
            return;
        }
        (void)tier->store(entries);
    }
}

TieredStats TieredCache::stats() const {
    std::lock_guard lock(m_mutex);
    return m_stats;
}

std::vector<std::pair<std::string, TierStats>> TieredCache::tier_stats() const {
    std::vector<std::pair<std::string, TierStats>> out;
    for (const auto& tier : m_tiers) {
        out.emplace_back(tier->name(), tier->stats());
    }
    return out;
}

std::vector<Error> TieredCache::take_errors() {
    std::lock_guard lock(m_mutex);
    return std::exchange(m_errors, {});
}

} // namespace athena
