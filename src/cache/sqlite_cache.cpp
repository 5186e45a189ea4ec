#include <athena/sqlite_cache.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <system_error>

#include <unistd.h>

namespace athena {
namespace {

// "ath1" in ASCII: marks the file as an athena cache so a foreign database is never taken
// over or altered.
constexpr int k_application_id = 0x61746831;
constexpr int k_busy_timeout_ms = 10'000;

// Schema steps: entry i moves a database from version i to version i + 1. A new version
// appends a step; existing steps never change, so any older cache can be brought forward.
constexpr const char* k_migrations[] = {
    // 0 -> 1
    "CREATE TABLE verdicts ("
    "  sha256 TEXT NOT NULL,"
    "  profile TEXT NOT NULL,"
    "  entry TEXT NOT NULL,"
    "  created_unix_s INTEGER NOT NULL,"
    "  PRIMARY KEY (sha256, profile)"
    ") WITHOUT ROWID;"
    "CREATE TABLE stat_cache ("
    "  device INTEGER NOT NULL,"
    "  inode INTEGER NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  mtime_ns INTEGER NOT NULL,"
    "  ctime_ns INTEGER NOT NULL,"
    "  recorded_ns INTEGER NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  PRIMARY KEY (device, inode)"
    ") WITHOUT ROWID;",
    // 1 -> 2: verdicts that the shared tier (Redis) could not take, kept until pushed there.
    "CREATE TABLE pending_sync ("
    "  sha256 TEXT NOT NULL,"
    "  profile TEXT NOT NULL,"
    "  entry TEXT NOT NULL,"
    "  queued_unix_s INTEGER NOT NULL,"
    "  PRIMARY KEY (sha256, profile)"
    ") WITHOUT ROWID;",
};
static_assert(std::size(k_migrations) == k_cache_schema_version);

struct StatementDeleter {
    void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

struct ConnectionDeleter {
    void operator()(sqlite3* connection) const { sqlite3_close_v2(connection); }
};
using Connection = std::unique_ptr<sqlite3, ConnectionDeleter>;

std::unexpected<Error> sqlite_error(sqlite3* connection, const std::string& what) {
    return fail("cache", what + ": " + sqlite3_errmsg(connection));
}

Result<void> execute(sqlite3* connection, const char* sql) {
    char* message = nullptr;
    if (sqlite3_exec(connection, sql, nullptr, nullptr, &message) != SQLITE_OK) {
        std::string text = message != nullptr ? message : sqlite3_errmsg(connection);
        sqlite3_free(message);
        return fail("cache", text);
    }
    return {};
}

Result<Statement> prepare(sqlite3* connection, const char* sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v3(connection, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement,
                           nullptr) != SQLITE_OK) {
        return sqlite_error(connection, "cannot prepare statement");
    }
    return Statement(statement);
}

Result<std::int64_t> query_integer(sqlite3* connection, const char* sql) {
    auto statement = prepare(connection, sql);
    if (!statement) {
        return std::unexpected(statement.error());
    }
    const int rc = sqlite3_step(statement->get());
    if (rc != SQLITE_ROW) {
        return sqlite_error(connection, "query failed");
    }
    return sqlite3_column_int64(statement->get(), 0);
}

Result<Connection> open_connection(const std::filesystem::path& file) {
    sqlite3* raw = nullptr;
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    const int rc = sqlite3_open_v2(file.c_str(), &raw, flags, nullptr);
    Connection connection(raw);
    if (rc != SQLITE_OK) {
        return fail("cache", "cannot open " + file.string() + ": " +
                                 (raw != nullptr ? sqlite3_errmsg(raw) : "out of memory"));
    }
    sqlite3_busy_timeout(connection.get(), k_busy_timeout_ms);
    return connection;
}

std::int64_t now_unix_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Brings the schema to the current version, or explains why this file cannot be used.
// Runs under BEGIN IMMEDIATE so two processes creating one cache do not both migrate.
Result<void> migrate(sqlite3* connection, const std::filesystem::path& file) {
    const std::string where = file.string();
    if (auto ok = execute(connection, "BEGIN IMMEDIATE"); !ok) {
        if (ok.error().message.find("not a database") != std::string::npos) {
            return fail("cache", where + " is not a SQLite database (" + ok.error().message +
                                     "); move it aside or choose another --cache-dir");
        }
        return fail("cache", "cannot read " + where + ": " + ok.error().message);
    }
    auto rollback_with = [&](Error error) -> Result<void> {
        (void)execute(connection, "ROLLBACK");
        return std::unexpected(std::move(error));
    };

    const auto application_id = query_integer(connection, "PRAGMA application_id");
    const auto version = query_integer(connection, "PRAGMA user_version");
    const auto tables = query_integer(connection, "SELECT count(*) FROM sqlite_master");
    if (!application_id || !version || !tables) {
        const Error& error = !application_id ? application_id.error()
                             : !version      ? version.error()
                                             : tables.error();
        return rollback_with(Error{"cache", where + " is unreadable (" + error.message +
                                                "); move it aside or choose another "
                                                "--cache-dir"});
    }
    const bool is_empty = *application_id == 0 && *version == 0 && *tables == 0;
    if (!is_empty && *application_id != k_application_id) {
        return rollback_with(Error{"cache", where + " is a SQLite database of another "
                                                "program; move it aside or choose another "
                                                "--cache-dir"});
    }
    if (*version > k_cache_schema_version) {
        return rollback_with(Error{
            "cache", where + " has schema version " + std::to_string(*version) +
                         ", newer than this athena understands (" +
                         std::to_string(k_cache_schema_version) +
                         "); upgrade athena or choose another --cache-dir"});
    }
    for (auto step = *version; step < k_cache_schema_version; ++step) {
        if (auto ok = execute(connection, k_migrations[step]); !ok) {
            return rollback_with(Error{"cache", "cannot migrate " + where + " to schema " +
                                                    std::to_string(step + 1) + ": " +
                                                    ok.error().message});
        }
    }
    const std::string stamp = "PRAGMA application_id = " + std::to_string(k_application_id) +
                              "; PRAGMA user_version = " +
                              std::to_string(k_cache_schema_version);
    if (auto ok = execute(connection, stamp.c_str()); !ok) {
        return rollback_with(ok.error());
    }
    return execute(connection, "COMMIT");
}

// A connection with the statements every lookup needs, prepared once.
struct ReaderConnection {
    Connection connection;
    Statement select_verdict;
    Statement select_stat;
};

class Database;

class SqliteVerdictTier final : public CacheTier {
public:
    explicit SqliteVerdictTier(std::shared_ptr<Database> database)
        : m_database(std::move(database)) {}

    std::string name() const override { return "sqlite"; }
    Result<std::vector<std::optional<CacheEntry>>>
    lookup(std::span<const CacheKey> keys) override;
    Result<void> store(std::span<const std::pair<CacheKey, CacheEntry>> entries) override;
    TierStats stats() const override {
        std::lock_guard lock(m_stats_mutex);
        return m_stats;
    }

private:
    std::shared_ptr<Database> m_database;
    mutable std::mutex m_stats_mutex;
    TierStats m_stats;
};

class Database final : public CacheDatabase, public std::enable_shared_from_this<Database> {
public:
    Database(std::filesystem::path file, Connection writer)
        : m_file(std::move(file)), m_writer(std::move(writer)) {}

    const std::filesystem::path& file() const override { return m_file; }

    std::unique_ptr<CacheTier> make_verdict_tier() override {
        return std::make_unique<SqliteVerdictTier>(shared_from_this());
    }

    // Hands out a reader connection for the calling thread; readers are pooled, so the
    // number of connections is the peak number of threads looking up at once.
    Result<std::unique_ptr<ReaderConnection>> take_reader() {
        {
            std::lock_guard lock(m_pool_mutex);
            if (!m_readers.empty()) {
                auto reader = std::move(m_readers.back());
                m_readers.pop_back();
                return reader;
            }
        }
        auto connection = open_connection(m_file);
        if (!connection) {
            return std::unexpected(connection.error());
        }
        // A small page cache per reader: there is one reader per concurrent worker, the
        // kernel's page cache already holds the file, and SQLite's default of 2 MiB per
        // connection made up half of a scan's memory. Memory-mapping the file would count
        // its pages once per connection in the resident set, so it stays off.
        (void)execute(connection->get(), "PRAGMA cache_size = -256");
        auto reader = std::make_unique<ReaderConnection>();
        auto verdict = prepare(connection->get(),
                               "SELECT entry FROM verdicts WHERE sha256 = ?1 AND profile = ?2");
        auto stat = prepare(connection->get(),
                            "SELECT size, mtime_ns, ctime_ns, recorded_ns, sha256 "
                            "FROM stat_cache WHERE device = ?1 AND inode = ?2");
        if (!verdict || !stat) {
            return std::unexpected(!verdict ? verdict.error() : stat.error());
        }
        reader->connection = std::move(*connection);
        reader->select_verdict = std::move(*verdict);
        reader->select_stat = std::move(*stat);
        return reader;
    }

    void return_reader(std::unique_ptr<ReaderConnection> reader) {
        std::lock_guard lock(m_pool_mutex);
        m_readers.push_back(std::move(reader));
    }

    Result<std::optional<std::string>> stat_lookup(const FileIdentity& identity) override {
        auto reader = take_reader();
        if (!reader) {
            return std::unexpected(reader.error());
        }
        sqlite3_stmt* statement = (*reader)->select_stat.get();
        sqlite3_bind_int64(statement, 1, static_cast<sqlite3_int64>(identity.device));
        sqlite3_bind_int64(statement, 2, static_cast<sqlite3_int64>(identity.inode));
        const int rc = sqlite3_step(statement);
        std::optional<std::string> digest;
        if (rc == SQLITE_ROW) {
            const auto size = static_cast<std::uint64_t>(sqlite3_column_int64(statement, 0));
            const std::int64_t mtime_ns = sqlite3_column_int64(statement, 1);
            const std::int64_t ctime_ns = sqlite3_column_int64(statement, 2);
            const std::int64_t recorded_ns = sqlite3_column_int64(statement, 3);
            const bool is_same = size == identity.size_bytes && mtime_ns == identity.mtime_ns &&
                                 ctime_ns == identity.ctime_ns;
            const bool is_racy = mtime_ns >= recorded_ns - k_racy_window_ns ||
                                 ctime_ns >= recorded_ns - k_racy_window_ns;
            if (is_same && !is_racy) {
                digest.emplace(reinterpret_cast<const char*>(sqlite3_column_text(statement, 4)));
            }
        }
        sqlite3_reset(statement);
        const bool failed = rc != SQLITE_ROW && rc != SQLITE_DONE;
        Error error;
        if (failed) {
            error = Error{"cache", std::string("stat cache lookup failed: ") +
                                       sqlite3_errmsg((*reader)->connection.get())};
        }
        return_reader(std::move(*reader));
        if (failed) {
            return std::unexpected(error);
        }
        return digest;
    }

    Result<void> stat_store(std::span<const StatRecord> records) override {
        if (records.empty()) {
            return {};
        }
        std::lock_guard lock(m_writer_mutex);
        return in_write_transaction([&]() -> Result<void> {
            auto statement = writer_statement(m_insert_stat,
                                              "INSERT OR REPLACE INTO stat_cache (device, inode, "
                                              "size, mtime_ns, ctime_ns, recorded_ns, sha256) "
                                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
            if (!statement) {
                return std::unexpected(statement.error());
            }
            for (const StatRecord& record : records) {
                sqlite3_stmt* s = *statement;
                const FileIdentity& id = record.identity;
                sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(id.device));
                sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(id.inode));
                sqlite3_bind_int64(s, 3, static_cast<sqlite3_int64>(id.size_bytes));
                sqlite3_bind_int64(s, 4, id.mtime_ns);
                sqlite3_bind_int64(s, 5, id.ctime_ns);
                sqlite3_bind_int64(s, 6, record.recorded_ns);
                sqlite3_bind_text(s, 7, record.sha256.data(),
                                  static_cast<int>(record.sha256.size()), SQLITE_TRANSIENT);
                const int rc = sqlite3_step(s);
                sqlite3_reset(s);
                if (rc != SQLITE_DONE) {
                    return sqlite_error(m_writer.get(), "cannot store stat cache entry");
                }
            }
            return {};
        });
    }

    // Group commit: stores that threads make at the same time share one transaction, so
    // promoting many one-key hits from a lower tier costs one commit per batch, not per key.
    // The first caller to find no commit running writes every request queued so far; the
    // others wait for it. Each call still stores all its entries or none: when the shared
    // transaction fails, each request is retried in a transaction of its own.
    Result<void> store_verdicts(std::span<const std::pair<CacheKey, CacheEntry>> entries) {
        if (entries.empty()) {
            return {};
        }
        StoreRequest request{entries, {}, false};
        std::unique_lock lock(m_group_mutex);
        m_group_queue.push_back(&request);
        while (!request.is_done) {
            if (m_is_group_committing) {
                m_group_done.wait(lock);
                continue;
            }
            m_is_group_committing = true;
            std::vector<StoreRequest*> batch = std::exchange(m_group_queue, {});
            lock.unlock();
            commit_group(batch);
            lock.lock();
            for (StoreRequest* done : batch) {
                done->is_done = true;
            }
            m_is_group_committing = false;
            m_group_done.notify_all();
        }
        return request.result;
    }

    Result<CacheDatabaseStats> stats() override {
        std::lock_guard lock(m_writer_mutex);
        CacheDatabaseStats out;
        const auto verdicts = query_integer(m_writer.get(), "SELECT count(*) FROM verdicts");
        const auto stat_entries = query_integer(m_writer.get(),
                                                "SELECT count(*) FROM stat_cache");
        const auto version = query_integer(m_writer.get(), "PRAGMA user_version");
        const auto pending = query_integer(m_writer.get(), "SELECT count(*) FROM pending_sync");
        if (!verdicts || !stat_entries || !version || !pending) {
            return sqlite_error(m_writer.get(), "cannot read cache statistics");
        }
        out.verdicts = static_cast<std::uint64_t>(*verdicts);
        out.stat_entries = static_cast<std::uint64_t>(*stat_entries);
        out.pending_sync = static_cast<std::uint64_t>(*pending);
        out.schema_version = static_cast<int>(*version);
        std::error_code ignored;
        for (const char* suffix : {"", "-wal"}) {
            const auto size = std::filesystem::file_size(m_file.string() + suffix, ignored);
            if (!ignored) {
                out.file_bytes += size;
            }
        }
        return out;
    }

    Result<void> clear() override {
        std::lock_guard lock(m_writer_mutex);
        return in_write_transaction([&]() -> Result<void> {
            return execute(m_writer.get(), "DELETE FROM verdicts; DELETE FROM stat_cache;");
        });
    }

    Result<std::vector<std::pair<std::string, std::string>>>
    verdicts_for(const std::string& sha256) override {
        std::lock_guard lock(m_writer_mutex);
        auto statement = prepare(m_writer.get(),
                                 "SELECT profile, entry FROM verdicts WHERE sha256 = ?1 "
                                 "ORDER BY profile");
        if (!statement) {
            return std::unexpected(statement.error());
        }
        sqlite3_bind_text(statement->get(), 1, sha256.data(), static_cast<int>(sha256.size()),
                          SQLITE_STATIC);
        std::vector<std::pair<std::string, std::string>> rows;
        int rc = SQLITE_ROW;
        while ((rc = sqlite3_step(statement->get())) == SQLITE_ROW) {
            rows.emplace_back(
                reinterpret_cast<const char*>(sqlite3_column_text(statement->get(), 0)),
                reinterpret_cast<const char*>(sqlite3_column_text(statement->get(), 1)));
        }
        if (rc != SQLITE_DONE) {
            return sqlite_error(m_writer.get(), "cannot read verdicts");
        }
        return rows;
    }

    Result<std::uint64_t> prune_verdicts(std::int64_t older_than_unix_s) override {
        std::lock_guard lock(m_writer_mutex);
        std::uint64_t removed = 0;
        auto ok = in_write_transaction([&]() -> Result<void> {
            auto statement = prepare(m_writer.get(),
                                     "DELETE FROM verdicts WHERE created_unix_s < ?1");
            if (!statement) {
                return std::unexpected(statement.error());
            }
            sqlite3_bind_int64(statement->get(), 1, older_than_unix_s);
            if (sqlite3_step(statement->get()) != SQLITE_DONE) {
                return sqlite_error(m_writer.get(), "cannot prune verdicts");
            }
            removed = static_cast<std::uint64_t>(sqlite3_changes64(m_writer.get()));
            return {};
        });
        if (!ok) {
            return std::unexpected(ok.error());
        }
        return removed;
    }

    Result<void>
    queue_pending_sync(std::span<const std::pair<CacheKey, CacheEntry>> entries) override {
        if (entries.empty()) {
            return {};
        }
        std::lock_guard lock(m_writer_mutex);
        return in_write_transaction([&]() -> Result<void> {
            auto statement =
                writer_statement(m_insert_pending, "INSERT OR REPLACE INTO pending_sync (sha256, "
                                                   "profile, entry, queued_unix_s) "
                                                   "VALUES (?1, ?2, ?3, ?4)");
            if (!statement) {
                return std::unexpected(statement.error());
            }
            const std::int64_t queued_unix_s = now_unix_s();
            for (const auto& [key, entry] : entries) {
                sqlite3_stmt* s = *statement;
                const std::string encoded = encode_cache_entry(entry);
                sqlite3_bind_text(s, 1, key.sha256.data(), static_cast<int>(key.sha256.size()),
                                  SQLITE_TRANSIENT);
                sqlite3_bind_text(s, 2, key.profile.data(), static_cast<int>(key.profile.size()),
                                  SQLITE_TRANSIENT);
                sqlite3_bind_text(s, 3, encoded.data(), static_cast<int>(encoded.size()),
                                  SQLITE_TRANSIENT);
                sqlite3_bind_int64(s, 4, queued_unix_s);
                const int rc = sqlite3_step(s);
                sqlite3_reset(s);
                if (rc != SQLITE_DONE) {
                    return sqlite_error(m_writer.get(), "cannot queue verdict for sync");
                }
            }
            return {};
        });
    }

    Result<std::vector<PendingSyncEntry>> list_pending_sync(std::size_t limit) override {
        std::lock_guard lock(m_writer_mutex);
        auto statement = prepare(m_writer.get(),
                                 "SELECT sha256, profile, entry, queued_unix_s FROM pending_sync "
                                 "ORDER BY sha256, profile LIMIT ?1");
        if (!statement) {
            return std::unexpected(statement.error());
        }
        const auto capped = std::min<std::size_t>(limit, std::numeric_limits<int>::max());
        sqlite3_bind_int64(statement->get(), 1, static_cast<sqlite3_int64>(capped));
        std::vector<PendingSyncEntry> rows;
        int rc = SQLITE_ROW;
        while ((rc = sqlite3_step(statement->get())) == SQLITE_ROW) {
            sqlite3_stmt* s = statement->get();
            PendingSyncEntry row;
            row.key.sha256 = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
            row.key.profile = reinterpret_cast<const char*>(sqlite3_column_text(s, 1));
            row.encoded_entry = reinterpret_cast<const char*>(sqlite3_column_text(s, 2));
            row.queued_unix_s = sqlite3_column_int64(s, 3);
            rows.push_back(std::move(row));
        }
        if (rc != SQLITE_DONE) {
            return sqlite_error(m_writer.get(), "cannot read verdicts queued for sync");
        }
        return rows;
    }

    Result<void> mark_synced(std::span<const CacheKey> keys) override {
        if (keys.empty()) {
            return {};
        }
        std::lock_guard lock(m_writer_mutex);
        return in_write_transaction([&]() -> Result<void> {
            auto statement =
                writer_statement(m_delete_pending, "DELETE FROM pending_sync "
                                                   "WHERE sha256 = ?1 AND profile = ?2");
            if (!statement) {
                return std::unexpected(statement.error());
            }
            for (const CacheKey& key : keys) {
                sqlite3_stmt* s = *statement;
                sqlite3_bind_text(s, 1, key.sha256.data(), static_cast<int>(key.sha256.size()),
                                  SQLITE_TRANSIENT);
                sqlite3_bind_text(s, 2, key.profile.data(), static_cast<int>(key.profile.size()),
                                  SQLITE_TRANSIENT);
                const int rc = sqlite3_step(s);
                sqlite3_reset(s);
                if (rc != SQLITE_DONE) {
                    return sqlite_error(m_writer.get(), "cannot mark verdict as synced");
                }
            }
            return {};
        });
    }

private:
    struct StoreRequest {
        std::span<const std::pair<CacheKey, CacheEntry>> entries;
        Result<void> result;
        bool is_done = false;
    };

    void commit_group(const std::vector<StoreRequest*>& batch) {
        std::lock_guard lock(m_writer_mutex);
        auto shared = in_write_transaction([&]() -> Result<void> {
            for (const StoreRequest* request : batch) {
                if (auto ok = write_verdicts(request->entries); !ok) {
                    return ok;
                }
            }
            return {};
        });
        for (StoreRequest* request : batch) {
            request->result = shared;
        }
        if (shared || batch.size() == 1) {
            return;
        }
        for (StoreRequest* request : batch) {
            request->result =
                in_write_transaction([&]() { return write_verdicts(request->entries); });
        }
    }

    // Inserts the entries; the caller holds m_writer_mutex inside a write transaction.
    Result<void> write_verdicts(std::span<const std::pair<CacheKey, CacheEntry>> entries) {
        auto statement =
            writer_statement(m_insert_verdict, "INSERT OR REPLACE INTO verdicts (sha256, profile, "
                                               "entry, created_unix_s) VALUES (?1, ?2, ?3, ?4)");
        if (!statement) {
            return std::unexpected(statement.error());
        }
        for (const auto& [key, entry] : entries) {
            sqlite3_stmt* s = *statement;
            const std::string encoded = encode_cache_entry(entry);
            sqlite3_bind_text(s, 1, key.sha256.data(), static_cast<int>(key.sha256.size()),
                              SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 2, key.profile.data(), static_cast<int>(key.profile.size()),
                              SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 3, encoded.data(), static_cast<int>(encoded.size()),
                              SQLITE_TRANSIENT);
            sqlite3_bind_int64(s, 4,
                               entry.created_unix_s != 0 ? entry.created_unix_s : now_unix_s());
            const int rc = sqlite3_step(s);
            sqlite3_reset(s);
            if (rc != SQLITE_DONE) {
                return sqlite_error(m_writer.get(), "cannot store verdict");
            }
        }
        return {};
    }

    Result<sqlite3_stmt*> writer_statement(Statement& slot, const char* sql) {
        if (!slot) {
            auto statement = prepare(m_writer.get(), sql);
            if (!statement) {
                return std::unexpected(statement.error());
            }
            slot = std::move(*statement);
        }
        return slot.get();
    }

    // Runs body inside BEGIN IMMEDIATE ... COMMIT, rolling back when it fails. The caller
    // holds m_writer_mutex.
    template <typename Body>
    Result<void> in_write_transaction(Body&& body) {
        if (auto ok = execute(m_writer.get(), "BEGIN IMMEDIATE"); !ok) {
            return fail("cache", "cannot start a write on " + m_file.string() + ": " +
                                     ok.error().message);
        }
        if (auto ok = body(); !ok) {
            (void)execute(m_writer.get(), "ROLLBACK");
            return ok;
        }
        if (auto ok = execute(m_writer.get(), "COMMIT"); !ok) {
            (void)execute(m_writer.get(), "ROLLBACK");
            return fail("cache", "cannot commit to " + m_file.string() + ": " +
                                     ok.error().message);
        }
        return {};
    }

    friend class SqliteVerdictTier;

    const std::filesystem::path m_file;
    std::mutex m_writer_mutex; // guards m_writer and its statements
    Connection m_writer;
    Statement m_insert_verdict;
    Statement m_insert_stat;
    Statement m_insert_pending;
    Statement m_delete_pending;
    std::mutex m_pool_mutex; // guards m_readers
    std::vector<std::unique_ptr<ReaderConnection>> m_readers;
    std::mutex m_group_mutex; // guards m_group_queue, m_is_group_committing, requests' is_done
    std::condition_variable m_group_done;
    std::vector<StoreRequest*> m_group_queue;
    bool m_is_group_committing = false;
};

Result<std::vector<std::optional<CacheEntry>>>
SqliteVerdictTier::lookup(std::span<const CacheKey> keys) {
    auto reader = m_database->take_reader();
    if (!reader) {
        std::lock_guard lock(m_stats_mutex);
        ++m_stats.errors;
        return std::unexpected(reader.error());
    }
    std::vector<std::optional<CacheEntry>> found(keys.size());
    std::uint64_t hits = 0;
    std::uint64_t errors = 0;
    std::optional<Error> failure;
    sqlite3_stmt* statement = (*reader)->select_verdict.get();
    for (std::size_t i = 0; i < keys.size(); ++i) {
        sqlite3_bind_text(statement, 1, keys[i].sha256.data(),
                          static_cast<int>(keys[i].sha256.size()), SQLITE_STATIC);
        sqlite3_bind_text(statement, 2, keys[i].profile.data(),
                          static_cast<int>(keys[i].profile.size()), SQLITE_STATIC);
        const int rc = sqlite3_step(statement);
        if (rc == SQLITE_ROW) {
            const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
            const auto length = static_cast<std::size_t>(sqlite3_column_bytes(statement, 0));
            // A row that no longer decodes (hand-edited, or written by a broken build) is a
            // miss: the file is analysed again and the row replaced.
            if (auto entry = decode_cache_entry(std::string_view(text, length))) {
                found[i] = std::move(*entry);
                ++hits;
            } else {
                ++errors;
            }
        } else if (rc != SQLITE_DONE) {
            failure = Error{"cache", std::string("verdict lookup failed: ") +
                                         sqlite3_errmsg((*reader)->connection.get())};
        }
        sqlite3_reset(statement);
        if (failure) {
            break;
        }
    }
    m_database->return_reader(std::move(*reader));

    std::lock_guard lock(m_stats_mutex);
    if (failure) {
        ++m_stats.errors;
        return std::unexpected(*failure);
    }
    m_stats.hits += hits;
    m_stats.misses += keys.size() - hits;
    m_stats.errors += errors;
    return found;
}

Result<void> SqliteVerdictTier::store(std::span<const std::pair<CacheKey, CacheEntry>> entries) {
    auto ok = m_database->store_verdicts(entries);
    std::lock_guard lock(m_stats_mutex);
    if (!ok) {
        ++m_stats.errors;
        return ok;
    }
    m_stats.stores += entries.size();
    return {};
}

} // namespace

Result<std::shared_ptr<CacheDatabase>> CacheDatabase::open(const std::filesystem::path& folder) {
    std::error_code error;
    std::filesystem::create_directories(folder, error);
    if (error) {
        return fail("cache", "cannot create cache folder " + folder.string() + ": " +
                                 error.message() +
                                 "; set --cache-dir or ATHENA_CACHE_DIR to a writable folder");
    }
    if (::access(folder.c_str(), W_OK) != 0) {
        return fail("cache", "cache folder " + folder.string() +
                                 " is not writable; set --cache-dir or ATHENA_CACHE_DIR to a "
                                 "writable folder");
    }
    const std::filesystem::path file = folder / "cache.db";
    auto connection = open_connection(file);
    if (!connection) {
        return std::unexpected(connection.error());
    }
    if (auto ok = migrate(connection->get(), file); !ok) {
        return std::unexpected(ok.error());
    }
    // synchronous=NORMAL in WAL mode keeps every commit safe from a crash of this process;
    // only a power loss can drop the last commits, and those are verdicts, not user data.
    if (auto ok = execute(connection->get(),
                          "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
        !ok) {
        return fail("cache", "cannot switch " + file.string() + " to WAL mode: " +
                                 ok.error().message);
    }
    return std::make_shared<Database>(file, std::move(*connection));
}

} // namespace athena
