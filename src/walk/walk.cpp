#include <athena/walk.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

namespace athena {
namespace {

std::int64_t to_ns(const struct timespec& time) {
    return static_cast<std::int64_t>(time.tv_sec) * 1'000'000'000 + time.tv_nsec;
}

FileIdentity identity_of(const struct stat& info) {
    return FileIdentity{static_cast<std::uint64_t>(info.st_dev),
                        static_cast<std::uint64_t>(info.st_ino),
                        static_cast<std::uint64_t>(info.st_size), to_ns(info.st_mtim),
                        to_ns(info.st_ctim)};
}

std::string errno_text(int error) {
    return std::strerror(error);
}

std::string join(const std::string& folder, const std::string& name) {
    if (!folder.empty() && folder.back() == '/') {
        return folder + name;
    }
    return folder + "/" + name;
}

class Walker {
public:
    Walker(const WalkOptions& options, const std::function<bool(WalkEntry&&)>& sink,
           const std::atomic<bool>& stop)
        : m_options(options), m_sink(sink), m_stop(stop) {}

    void walk_root(const std::string& root) {
        // A root is followed even when it is a symlink: naming it is asking for it.
        struct stat info{};
        if (::stat(root.c_str(), &info) != 0) {
            const int error = errno;
            struct stat link_info{};
            if (error == ENOENT && ::lstat(root.c_str(), &link_info) == 0) {
                report_error(root, "not_found", "dangling symlink");
            } else if (error == ENOENT || error == ENOTDIR) {
                report_error(root, "not_found", "no such file or folder");
            } else {
                report_error(root, "io", "cannot stat: " + errno_text(error));
            }
            return;
        }
        m_root_device = info.st_dev;
        if (S_ISDIR(info.st_mode)) {
            walk_folder(root, info);
        } else {
            visit_file(root, info);
        }
    }

    WalkStats stats() const { return m_stats; }
    bool is_stopped() const { return m_is_stopped || m_stop.load(std::memory_order_relaxed); }

private:
    void walk_folder(const std::string& path, const struct stat& info) {
        if (is_stopped()) {
            return;
        }
        if (m_options.one_file_system && info.st_dev != m_root_device) {
            ++m_stats.skipped_other_device;
            return;
        }
        const std::pair<dev_t, ino_t> id{info.st_dev, info.st_ino};
        if (m_options.follow_symlinks) {
            // Following links can reach a folder twice or loop forever; each folder is
            // entered once per run.
            if (!m_visited.insert(id).second) {
                ++m_stats.symlink_loops;
                return;
            }
        }
        ++m_stats.folders;

        // Read the folder whole, stat its entries relative to its descriptor (no path look-up
        // per file), and close it before descending, so deep trees never hold one descriptor
        // per level.
        const int dir_fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR* folder = dir_fd >= 0 ? ::fdopendir(dir_fd) : nullptr;
        if (folder == nullptr) {
            const int error = errno;
            if (dir_fd >= 0) {
                ::close(dir_fd);
            }
            report_error(path, "io", "cannot open folder: " + errno_text(error));
            return;
        }
        std::vector<std::string> names;
        while (const dirent* entry = ::readdir(folder)) {
            const std::string_view name = entry->d_name;
            if (name != "." && name != "..") {
                names.emplace_back(name);
            }
        }
        std::sort(names.begin(), names.end());

        std::vector<std::pair<std::string, struct stat>> subfolders;
        for (const std::string& name : names) {
            if (is_stopped()) {
                break;
            }
            visit_child(dir_fd, path, name, subfolders);
        }
        ::closedir(folder);

        for (const auto& [subfolder, sub_info] : subfolders) {
            if (is_stopped()) {
                return;
            }
            walk_folder(subfolder, sub_info);
        }
    }

    // Files are delivered at once; folders are collected and walked after this folder's
    // descriptor is closed.
    void visit_child(int dir_fd, const std::string& folder, const std::string& name,
                     std::vector<std::pair<std::string, struct stat>>& subfolders) {
        std::string path = join(folder, name);
        if (!m_options.excludes.empty() && is_excluded(path, name, m_options.excludes)) {
            ++m_stats.skipped_excluded;
            return;
        }
        struct stat info{};
        if (::fstatat(dir_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
            const int error = errno;
            if (error == ENOENT) {
                return; // removed between readdir and stat: nothing left to scan
            }
            report_error(path, "io", "cannot stat: " + errno_text(error));
            return;
        }
        if (S_ISLNK(info.st_mode)) {
            if (!m_options.follow_symlinks) {
                ++m_stats.skipped_symlinks;
                return;
            }
            if (::fstatat(dir_fd, name.c_str(), &info, 0) != 0) {
                ++m_stats.skipped_symlinks; // dangling link: nothing to scan
                return;
            }
        }
        if (S_ISDIR(info.st_mode)) {
            subfolders.emplace_back(std::move(path), info);
        } else {
            visit_file(path, info);
        }
    }

    void visit_file(const std::string& path, const struct stat& info) {
        if (!S_ISREG(info.st_mode)) {
            ++m_stats.skipped_special;
            return;
        }
        if (m_options.max_file_size_bytes &&
            static_cast<std::uint64_t>(info.st_size) > *m_options.max_file_size_bytes) {
            ++m_stats.skipped_too_large;
            return;
        }
        ++m_stats.files;
        deliver(WalkEntry{path, identity_of(info), std::nullopt});
    }

    void report_error(const std::string& path, const char* kind, std::string message) {
        ++m_stats.errors;
        deliver(WalkEntry{path, {}, Error{kind, std::move(message)}});
    }

    void deliver(WalkEntry&& entry) {
        if (!m_is_stopped && !m_sink(std::move(entry))) {
            m_is_stopped = true;
        }
    }

    const WalkOptions& m_options;
    const std::function<bool(WalkEntry&&)>& m_sink;
    const std::atomic<bool>& m_stop;
    WalkStats m_stats;
    dev_t m_root_device = 0;
    bool m_is_stopped = false;
    std::set<std::pair<dev_t, ino_t>> m_visited;
};

} // namespace

bool is_excluded(const std::string& path, std::string_view name,
                 const std::vector<std::string>& globs) {
    const std::string name_text(name);
    for (const std::string& glob : globs) {
        const bool whole_path = glob.find('/') != std::string::npos;
        const std::string& subject = whole_path ? path : name_text;
        if (::fnmatch(glob.c_str(), subject.c_str(), 0) == 0) {
            return true;
        }
    }
    return false;
}

WalkStats walk(const std::vector<std::string>& roots, const WalkOptions& options,
               const std::function<bool(WalkEntry&&)>& sink, const std::atomic<bool>& stop) {
    Walker walker(options, sink, stop);
    for (const std::string& root : roots) {
        if (walker.is_stopped()) {
            break;
        }
        walker.walk_root(root);
    }
    return walker.stats();
}

} // namespace athena
