#include "temp_dir.hpp"

#include <athena/sqlite_cache.hpp>
#include <athena/tiered_cache.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <fstream>

namespace {

athena::CacheEntry sample_entry() {
    athena::CacheEntry entry;
    entry.verdict.threat_level = athena::ThreatLevel::suspicious;
    entry.verdict.confidence = 0.6;
    entry.verdict.signatures = {"download_pipe_to_shell"};
    entry.verdict.iocs.urls = {"http://127.0.0.1/x.sh"};
    entry.verdict.summary = "shell script that downloads and runs code";
    entry.provider = "builtin";
    entry.model = "builtin-1";
    entry.file_type = "POSIX shell script, ASCII text executable";
    entry.created_unix_s = 1700000000;
    return entry;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t query_integer(const std::filesystem::path& file, const char* sql) {
    sqlite3* connection = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &connection) == SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    REQUIRE(sqlite3_prepare_v2(connection, sql, -1, &statement, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(statement) == SQLITE_ROW);
    const auto value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    sqlite3_close(connection);
    return value;
}

std::string query_text(const std::filesystem::path& file, const char* sql) {
    sqlite3* connection = nullptr;
    REQUIRE(sqlite3_open(file.c_str(), &connection) == SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    REQUIRE(sqlite3_prepare_v2(connection, sql, -1, &statement, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(statement) == SQLITE_ROW);
    std::string value = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
    sqlite3_finalize(statement);
    sqlite3_close(connection);
    return value;
}

} // namespace

TEST_CASE("CacheDatabase: verdict round trip through a reopen") {
    athena::test::TempDir dir;
    const athena::CacheKey key{std::string(64, 'a'), "builtin/1"};
    const std::pair<athena::CacheKey, athena::CacheEntry> stored{key, sample_entry()};
    {
        auto database = athena::CacheDatabase::open(dir.path());
        REQUIRE(database.has_value());
        auto tier = (*database)->make_verdict_tier();
        REQUIRE(tier->store(std::span(&stored, 1)));
    }

    auto database = athena::CacheDatabase::open(dir.path());
    REQUIRE(database.has_value());
    auto tier = (*database)->make_verdict_tier();
    auto found = tier->lookup(std::span(&key, 1));

    REQUIRE(found.has_value());
    REQUIRE((*found)[0].has_value());
    CHECK(*(*found)[0] == sample_entry());
    CHECK(tier->stats().hits == 1);
}

TEST_CASE("CacheDatabase: schema version and application id are stamped") {
    athena::test::TempDir dir;
    REQUIRE(athena::CacheDatabase::open(dir.path()).has_value());

    const auto file = dir.path() / "cache.db";

    CHECK(query_integer(file, "PRAGMA user_version") == athena::k_cache_schema_version);
    CHECK(query_integer(file, "PRAGMA application_id") == 0x61746831);
    CHECK(query_text(file, "PRAGMA journal_mode") == "wal");
}

TEST_CASE("CacheDatabase: unusable files are rejected and left intact") {
    athena::test::TempDir dir;
    const auto file = dir.path() / "cache.db";

    SUBCASE("not a SQLite file") {
        const std::string junk(8192, 'x');
        std::ofstream(file, std::ios::binary) << junk;

        auto database = athena::CacheDatabase::open(dir.path());

        REQUIRE_FALSE(database.has_value());
        CHECK(database.error().kind == "cache");
        CHECK(database.error().message.find("not a SQLite database") != std::string::npos);
        CHECK(std::filesystem::file_size(file) == junk.size());
    }
    SUBCASE("another program's database") {
        sqlite3* connection = nullptr;
        REQUIRE(sqlite3_open(file.c_str(), &connection) == SQLITE_OK);
        REQUIRE(sqlite3_exec(connection, "CREATE TABLE mine (x); INSERT INTO mine VALUES (1);",
                             nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(connection);

        auto database = athena::CacheDatabase::open(dir.path());

        REQUIRE_FALSE(database.has_value());
        CHECK(database.error().message.find("another program") != std::string::npos);
        CHECK(query_integer(file, "SELECT count(*) FROM mine") == 1);
    }
    SUBCASE("a newer schema") {
        REQUIRE(athena::CacheDatabase::open(dir.path()).has_value());
        sqlite3* connection = nullptr;
        REQUIRE(sqlite3_open(file.c_str(), &connection) == SQLITE_OK);
        REQUIRE(sqlite3_exec(connection, "PRAGMA user_version = 99", nullptr, nullptr,
                             nullptr) == SQLITE_OK);
        sqlite3_close(connection);

        auto database = athena::CacheDatabase::open(dir.path());

        REQUIRE_FALSE(database.has_value());
        CHECK(database.error().message.find("newer") != std::string::npos);
    }
}

TEST_CASE("CacheDatabase: stat cache guards against racily clean entries") {
    athena::test::TempDir dir;
    auto database = athena::CacheDatabase::open(dir.path());
    REQUIRE(database.has_value());
    const std::int64_t recorded = now_ns();
    athena::FileIdentity old_file{1, 42, 100, recorded - 5'000'000'000, recorded - 5'000'000'000};
    athena::FileIdentity fresh_file{1, 43, 100, recorded - 1'000'000, recorded - 1'000'000};
    const std::vector<athena::StatRecord> records{{old_file, recorded, std::string(64, 'b')},
                                                  {fresh_file, recorded, std::string(64, 'c')}};
    REQUIRE((*database)->stat_store(records));

    SUBCASE("an entry written well after the last change is used") {
        auto digest = (*database)->stat_lookup(old_file);
        REQUIRE(digest.has_value());
        REQUIRE(digest->has_value());
        CHECK(**digest == std::string(64, 'b'));
    }
    SUBCASE("an entry written within the timestamp tick of a change is not trusted") {
        auto digest = (*database)->stat_lookup(fresh_file);
        REQUIRE(digest.has_value());
        CHECK_FALSE(digest->has_value());
    }
    SUBCASE("a different size or mtime misses") {
        auto changed = old_file;
        changed.size_bytes = 101;
        auto digest = (*database)->stat_lookup(changed);
        REQUIRE(digest.has_value());
        CHECK_FALSE(digest->has_value());
        changed = old_file;
        changed.mtime_ns += 1;
        digest = (*database)->stat_lookup(changed);
        REQUIRE(digest.has_value());
        CHECK_FALSE(digest->has_value());
    }
}

TEST_CASE("TieredCache: counts a lower-tier hit once and promotes it") {
    athena::test::TempDir dir;
    auto database = athena::CacheDatabase::open(dir.path());
    REQUIRE(database.has_value());
    const athena::CacheKey key{std::string(64, 'd'), "builtin/1"};
    const std::pair<athena::CacheKey, athena::CacheEntry> stored{key, sample_entry()};
    REQUIRE((*database)->make_verdict_tier()->store(std::span(&stored, 1)));
    std::vector<std::unique_ptr<athena::CacheTier>> tiers;
    tiers.push_back(athena::make_memory_tier(100));
    tiers.push_back((*database)->make_verdict_tier());
    athena::TieredCache cache(std::move(tiers));

    auto first = cache.lookup(std::span(&key, 1));
    auto second = cache.lookup(std::span(&key, 1));

    CHECK(first[0].tier == "sqlite");
    CHECK(second[0].tier == "memory");
    const auto stats = cache.stats();
    CHECK(stats.hits == 2);
    CHECK(stats.misses == 0);
    CHECK(stats.hits_by_tier.at("sqlite") == 1);
    CHECK(stats.hits_by_tier.at("memory") == 1);
}

TEST_CASE("TieredCache: a key no tier holds is one miss") {
    std::vector<std::unique_ptr<athena::CacheTier>> tiers;
    tiers.push_back(athena::make_memory_tier(100));
    tiers.push_back(athena::make_memory_tier(100));
    athena::TieredCache cache(std::move(tiers));
    const athena::CacheKey key{std::string(64, 'e'), "p"};

    auto found = cache.lookup(std::span(&key, 1));

    CHECK_FALSE(found[0].entry.has_value());
    CHECK(cache.stats().misses == 1);
    CHECK(cache.stats().hits == 0);
}

TEST_CASE("CacheDatabase: a version 1 file is migrated and keeps its rows") {
    athena::test::TempDir dir;
    const auto file = dir.path() / "cache.db";
    const std::string entry = athena::encode_cache_entry(sample_entry());
    {
        // The version 1 schema exactly as earlier athena releases wrote it.
        sqlite3* connection = nullptr;
        REQUIRE(sqlite3_open(file.c_str(), &connection) == SQLITE_OK);
        const std::string schema =
            "CREATE TABLE verdicts (sha256 TEXT NOT NULL, profile TEXT NOT NULL, "
            "entry TEXT NOT NULL, created_unix_s INTEGER NOT NULL, "
            "PRIMARY KEY (sha256, profile)) WITHOUT ROWID;"
            "CREATE TABLE stat_cache (device INTEGER NOT NULL, inode INTEGER NOT NULL, "
            "size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, "
            "recorded_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, "
            "PRIMARY KEY (device, inode)) WITHOUT ROWID;"
            "PRAGMA application_id = 1635018801; PRAGMA user_version = 1;";
        const std::string digest(64, 'f');
        const std::string rows =
            fmt::format("INSERT INTO verdicts VALUES ('{}', 'builtin/1', '{}', 1700000000);"
                        "INSERT INTO stat_cache VALUES (1, 2, 3, 4, 5, 6, '{}');",
                        digest, entry, digest);
        const std::string sql = schema + rows;
        REQUIRE(sqlite3_exec(connection, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(connection);
    }

    auto database = athena::CacheDatabase::open(dir.path());

    REQUIRE(database.has_value());
    CHECK(query_integer(file, "PRAGMA user_version") == 2);
    CHECK(query_integer(file, "SELECT count(*) FROM stat_cache") == 1);
    CHECK(query_integer(file, "SELECT count(*) FROM pending_sync") == 0);
    const athena::CacheKey key{std::string(64, 'f'), "builtin/1"};
    auto found = (*database)->make_verdict_tier()->lookup(std::span(&key, 1));
    REQUIRE(found.has_value());
    REQUIRE((*found)[0].has_value());
    CHECK(*(*found)[0] == sample_entry());
    auto stats = (*database)->stats();
    REQUIRE(stats.has_value());
    CHECK(stats->schema_version == 2);
    CHECK(stats->verdicts == 1);
}

TEST_CASE("CacheDatabase: pending sync queue") {
    athena::test::TempDir dir;
    auto database = athena::CacheDatabase::open(dir.path());
    REQUIRE(database.has_value());
    athena::CacheDatabase& db = **database;
    const athena::CacheKey first{std::string(64, '1'), "builtin/1"};
    const athena::CacheKey second{std::string(64, '2'), "builtin/1"};
    athena::CacheEntry newer = sample_entry();
    newer.verdict.summary = "requeued with a newer verdict";
    const std::vector<std::pair<athena::CacheKey, athena::CacheEntry>> entries{
        {first, sample_entry()}, {second, sample_entry()}};

    SUBCASE("queued entries are listed with their encoded verdict") {
        REQUIRE(db.queue_pending_sync(entries));

        auto listed = db.list_pending_sync(100);

        REQUIRE(listed.has_value());
        REQUIRE(listed->size() == 2);
        CHECK((*listed)[0].key == first);
        CHECK((*listed)[1].key == second);
        auto decoded = athena::decode_cache_entry((*listed)[0].encoded_entry);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == sample_entry());
        CHECK((*listed)[0].queued_unix_s > 1700000000);
    }
    SUBCASE("the limit caps the list") {
        REQUIRE(db.queue_pending_sync(entries));

        auto listed = db.list_pending_sync(1);

        REQUIRE(listed.has_value());
        CHECK(listed->size() == 1);
    }
    SUBCASE("requeueing a key keeps one row with the newer entry") {
        REQUIRE(db.queue_pending_sync(entries));
        const std::pair<athena::CacheKey, athena::CacheEntry> again{first, newer};
        REQUIRE(db.queue_pending_sync(std::span(&again, 1)));

        auto listed = db.list_pending_sync(100);

        REQUIRE(listed.has_value());
        CHECK(listed->size() == 2);
        bool is_first_found = false;
        for (const auto& row : *listed) {
            if (row.key == first) {
                is_first_found = true;
                CHECK(athena::decode_cache_entry(row.encoded_entry)->verdict.summary ==
                      newer.verdict.summary);
            }
        }
        CHECK(is_first_found);
    }
    SUBCASE("marked keys leave the queue, others stay") {
        REQUIRE(db.queue_pending_sync(entries));

        REQUIRE(db.mark_synced(std::span(&first, 1)));

        auto listed = db.list_pending_sync(100);
        REQUIRE(listed.has_value());
        REQUIRE(listed->size() == 1);
        CHECK((*listed)[0].key == second);
        CHECK(db.stats()->pending_sync == 1);
    }
    SUBCASE("clear keeps the queue") {
        REQUIRE(db.queue_pending_sync(entries));

        REQUIRE(db.clear());

        CHECK(db.stats()->pending_sync == 2);
    }
    SUBCASE("the queue survives a reopen") {
        REQUIRE(db.queue_pending_sync(entries));
        database->reset();

        auto reopened = athena::CacheDatabase::open(dir.path());

        REQUIRE(reopened.has_value());
        auto listed = (*reopened)->list_pending_sync(100);
        REQUIRE(listed.has_value());
        CHECK(listed->size() == 2);
    }
}
