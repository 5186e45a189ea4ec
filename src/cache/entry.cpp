#include <athena/cache.hpp>

#include <nlohmann/json.hpp>

namespace athena {
namespace {

// Version of the stored entry encoding; bump it when a field changes meaning.
constexpr int k_entry_version = 1;

} // namespace

std::string encode_cache_entry(const CacheEntry& entry) {
    nlohmann::ordered_json json = {
        {"v", k_entry_version},
        {"provider", entry.provider},
        {"model", entry.model},
        {"file_type", entry.file_type},
        {"created", entry.created_unix_s},
        {"verdict", verdict_to_json(entry.verdict)},
    };
    return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<CacheEntry> decode_cache_entry(std::string_view bytes) {
    const auto json = nlohmann::json::parse(bytes, nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
        return fail("cache", "stored cache entry is not valid JSON");
    }
    if (json.value("v", 0) != k_entry_version) {
        return fail("cache", "stored cache entry has an unknown version");
    }
    auto verdict = verdict_from_json(json.value("verdict", nlohmann::json()));
    if (!verdict) {
        return fail("cache", "stored verdict is invalid: " + verdict.error().message);
    }
    CacheEntry entry;
    entry.verdict = std::move(*verdict);
    try {
        entry.provider = json.value("provider", "");
        entry.model = json.value("model", "");
        entry.file_type = json.value("file_type", "");
        entry.created_unix_s = json.value("created", std::int64_t{0});
    } catch (const nlohmann::json::exception& error) {
        return fail("cache", std::string("stored cache entry has a field of the wrong type: ") +
                                 error.what());
    }
    return entry;
}

} // namespace athena
