#include "evidence/iocs.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

using athena::evidence::extract_iocs;
using athena::evidence::IocLists;

namespace {

constexpr std::size_t k_cap = 50;

bool contains(const std::vector<std::string>& values, const std::string& value) {
    return std::ranges::find(values, value) != values.end();
}

// Encodes ASCII text as UTF-16LE, as Windows programs store their strings.
std::string to_utf16le(const std::string& text) {
    std::string out;
    for (char c : text) {
        out.push_back(c);
        out.push_back('\0');
    }
    return out;
}

// Runs that point into lines, which must outlive them.
std::vector<athena::evidence::TextRun> runs_of(const std::vector<std::string>& lines) {
    std::vector<athena::evidence::TextRun> runs;
    std::uint64_t offset = 0;
    for (const std::string& line : lines) {
        runs.push_back({offset, line});
        offset += line.size() + 1;
    }
    return runs;
}

} // namespace

TEST_CASE("extract_iocs: URLs") {
    SUBCASE("http, https and ftp URLs are found with their hosts") {
        IocLists found =
            extract_iocs("get http://evil.example.com/a.sh then https://10.1.2.3:8443/p?q=1 and "
                         "ftp://files.example.org/x",
                         k_cap);

        CHECK(contains(found.urls, "http://evil.example.com/a.sh"));
        CHECK(contains(found.urls, "https://10.1.2.3:8443/p?q=1"));
        CHECK(contains(found.urls, "ftp://files.example.org/x"));
        CHECK(contains(found.domains, "evil.example.com"));
        CHECK(contains(found.domains, "files.example.org"));
        CHECK(contains(found.ips, "10.1.2.3"));
    }

    SUBCASE("trailing sentence punctuation is not part of the URL") {
        IocLists found =
            extract_iocs("see (https://example.com/page). Or http://a.example.net,", k_cap);

        CHECK(contains(found.urls, "https://example.com/page"));
        CHECK(contains(found.urls, "http://a.example.net"));
    }

    SUBCASE("IPv6 hosts in brackets are IPs") {
        IocLists found = extract_iocs("curl http://[2001:db8::1]:8080/x", k_cap);

        CHECK(contains(found.urls, "http://[2001:db8::1]:8080/x"));
        CHECK(contains(found.ips, "2001:db8::1"));
    }

    SUBCASE("format strings, other schemes and empty hosts are not URLs") {
        IocLists found = extract_iocs("http://%s/%s file:///etc/hosts mailto://x http:// "
                                      "https://$HOST/x",
                                      k_cap);

        CHECK(found.urls.empty());
    }
}

TEST_CASE("extract_iocs: IPv4 addresses") {
    SUBCASE("valid addresses are found, also at the end of a sentence") {
        IocLists found = extract_iocs("connect 8.8.4.4 or 192.168.10.200. ip=1.2.3.4", k_cap);

        CHECK(contains(found.ips, "8.8.4.4"));
        CHECK(contains(found.ips, "192.168.10.200"));
        CHECK(contains(found.ips, "1.2.3.4"));
    }

    SUBCASE("version numbers and invalid octets are not addresses") {
        IocLists found = extract_iocs("1.2.3.4.5 999.1.1.1 v1.2.3.4 01.2.3.4 1.2.3 .5.6.7.8 "
                                      "GLIBC_2.2.5 2.0.0.0 255.255.255.0 0.1.2.3",
                                      k_cap);

        CHECK(found.ips.empty());
    }
}

TEST_CASE("extract_iocs: IPv6 addresses") {
    SUBCASE("full and compressed forms are found") {
        IocLists found =
            extract_iocs("listen fe80::1 and 2001:0db8:85a3:0000:0000:8a2e:0370:7334", k_cap);

        CHECK(contains(found.ips, "fe80::1"));
        CHECK(contains(found.ips, "2001:0db8:85a3:0000:0000:8a2e:0370:7334"));
    }

    SUBCASE("C++ scopes, times and MAC addresses are not addresses") {
        IocLists found = extract_iocs("std::string a::b 12:34:56 00:11:22:33:44:55 ::", k_cap);

        CHECK(found.ips.empty());
    }
}

TEST_CASE("extract_iocs: domains") {
    SUBCASE("names ending in a known TLD are found, lower-cased") {
        IocLists found = extract_iocs("beacon to Update.Example.COM and c2-server.ru now", k_cap);

        CHECK(contains(found.domains, "update.example.com"));
        CHECK(contains(found.domains, "c2-server.ru"));
    }

    SUBCASE("file names, libraries and code members are not domains") {
        IocLists found = extract_iocs("libc.so.6 main.cpp libfoo.so setup.py README.md "
                                      "java.net System.Net logger.info(x) user.email a..com",
                                      k_cap);

        CHECK(found.domains.empty());
    }

    SUBCASE("is_plausible_domain checks labels and the TLD") {
        CHECK(athena::evidence::is_plausible_domain("example.com"));
        CHECK(athena::evidence::is_plausible_domain("a-b.example.co.uk"));
        CHECK_FALSE(athena::evidence::is_plausible_domain("example"));
        CHECK_FALSE(athena::evidence::is_plausible_domain("-bad.com"));
        CHECK_FALSE(athena::evidence::is_plausible_domain("example.c0m"));
        CHECK_FALSE(athena::evidence::is_plausible_domain("example.Com"));
    }
}

TEST_CASE("extract_iocs: e-mail addresses") {
    SUBCASE("addresses with a known TLD are found") {
        IocLists found = extract_iocs("mail recover.files@example.com for the key", k_cap);

        CHECK(contains(found.emails, "recover.files@example.com"));
    }

    SUBCASE("versioned symbols and local hosts are not addresses") {
        IocLists found = extract_iocs("memcpy@@GLIBC_2.14 root@localhost user@host.cpp", k_cap);

        CHECK(found.emails.empty());
    }
}

TEST_CASE("extract_iocs: registry keys") {
    SUBCASE("full root names keep spaces inside the path") {
        IocLists found = extract_iocs(
            "\"HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\"",
            k_cap);

        CHECK(contains(found.registry_keys,
                       "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\"
                       "Winlogon"));
    }

    SUBCASE("short roots and PowerShell drives end at the next argument") {
        IocLists found = extract_iocs(
            "Set-ItemProperty HKCU:\\Software\\Microsoft\\Windows\\CurrentVersion\\Run -Name x",
            k_cap);

        CHECK(contains(found.registry_keys,
                       "HKCU:\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"));
    }

    SUBCASE("doubled backslashes of string literals are collapsed") {
        IocLists found = extract_iocs("RegOpenKey(\"HKLM\\\\System\\\\CurrentControlSet\")", k_cap);

        CHECK(contains(found.registry_keys, "HKLM\\System\\CurrentControlSet"));
    }

    SUBCASE("roots inside words or without a key are not keys") {
        IocLists found = extract_iocs("myHKLM\\x HKLMX\\y HKCU alone HKCU\\", k_cap);

        CHECK(found.registry_keys.empty());
    }
}

TEST_CASE("extract_iocs: file paths") {
    SUBCASE("Windows drive and environment variable paths are found") {
        IocLists found = extract_iocs(
            "copy C:\\Users\\Public\\svc.exe %APPDATA%\\Microsoft\\upd.dll 'd:\\x.bat'", k_cap);

        CHECK(contains(found.file_paths, "C:\\Users\\Public\\svc.exe"));
        CHECK(contains(found.file_paths, "%APPDATA%\\Microsoft\\upd.dll"));
        CHECK(contains(found.file_paths, "d:\\x.bat"));
    }

    SUBCASE("Unix paths under watched folders are found") {
        IocLists found = extract_iocs(
            "cat /etc/passwd > /tmp/.x/out; cp a /dev/shm/k; ls /dev/shm; /home/u/.ssh/id_rsa",
            k_cap);

        CHECK(contains(found.file_paths, "/etc/passwd"));
        CHECK(contains(found.file_paths, "/tmp/.x/out"));
        CHECK(contains(found.file_paths, "/dev/shm/k"));
        CHECK(contains(found.file_paths, "/dev/shm"));
        CHECK(contains(found.file_paths, "/home/u/.ssh/id_rsa"));
    }

    SUBCASE("bare folders, URL paths and other folders are not paths") {
        IocLists found = extract_iocs("/usr and /tmp/ http://h.example.com/etc/passwd "
                                      "a/etc/passwd /srv/www/x ./tmp/y /dev/shmem",
                                      k_cap);

        CHECK(found.file_paths.empty());
    }
}

TEST_CASE("extract_iocs: deduplication, cap and UTF-16") {
    SUBCASE("each value appears once, in order of first appearance") {
        IocLists found = extract_iocs("8.8.8.8 1.1.1.1 8.8.8.8 1.1.1.1", k_cap);

        CHECK(found.ips == std::vector<std::string>{"8.8.8.8", "1.1.1.1"});
    }

    SUBCASE("each kind is capped") {
        std::string text;
        for (int i = 1; i <= 10; ++i) {
            text += "10.0.0." + std::to_string(i) + " ";
        }

        IocLists found = extract_iocs(text, 3);

        CHECK(found.ips == std::vector<std::string>{"10.0.0.1", "10.0.0.2", "10.0.0.3"});
    }

    SUBCASE("UTF-16LE strings are decoded") {
        std::string bytes = std::string("\x01\x02", 2) +
                            to_utf16le("http://evil.example.com/payload") +
                            std::string("\xff\xfe", 2);

        IocLists found = extract_iocs(bytes, k_cap);

        CHECK(contains(found.urls, "http://evil.example.com/payload"));
    }
}

TEST_CASE("PrintableRuns: ASCII and UTF-16LE runs") {
    std::string bytes = std::string("ab\x01", 3) + "hello world" + std::string("\x00\x01", 2) +
                        to_utf16le("wide text") + std::string("\x02", 1);
    auto data = std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());

    athena::evidence::PrintableRuns runs = athena::evidence::PrintableRuns::find(data, 4);

    REQUIRE(runs.runs().size() == 2);
    CHECK(runs.runs()[0].text == "hello world");
    CHECK(runs.runs()[0].offset == 3);
    CHECK(runs.runs()[1].text == "wide text");
    CHECK(runs.runs()[1].offset == 16);
}

TEST_CASE("rank_notable_strings: ranking and cap") {
    using athena::evidence::rank_notable_strings;

    SUBCASE("notable strings come before plain ones, plain ones in file order") {
        std::vector<std::string> lines = {
            "just some words", "more plain text", "powershell -nop -w hidden -c calc",
            "download http://evil.example.com/x", "HKLM\\Software\\Run"};
        auto runs = runs_of(lines);

        std::vector<std::string> ranked = rank_notable_strings(runs, 10);

        REQUIRE(ranked.size() == 5);
        CHECK(ranked[0] == "download http://evil.example.com/x");
        CHECK(ranked[3] == "just some words");
        CHECK(ranked[4] == "more plain text");
    }

    SUBCASE("a URL outranks a path, which outranks plain text") {
        CHECK(athena::evidence::notable_string_score("see http://example.com/") >
              athena::evidence::notable_string_score("read /etc/shadow now"));
        CHECK(athena::evidence::notable_string_score("read /etc/shadow now") >
              athena::evidence::notable_string_score("plain words only"));
        CHECK(athena::evidence::notable_string_score("plain words only") == 0);
    }

    SUBCASE("base64 blobs and shell commands are notable") {
        CHECK(athena::evidence::notable_string_score(
                  "SGVsbG8gV29ybGQhIFRoaXMgaXMgYSB0ZXN0IG9mIGJhc2U2NCBkZXRlY3Rpb24=") > 0);
        CHECK(athena::evidence::notable_string_score("bash -c 'id'") > 0);
        CHECK(athena::evidence::notable_string_score(
                  "0123456789abcdef0123456789abcdef0123456789") == 0);
    }

    SUBCASE("duplicates and short runs are dropped and the cap holds") {
        std::vector<std::string> lines = {"abcde",     "repeated string", "repeated string",
                                          "third one", "fourth one",      "fifth one"};
        auto runs = runs_of(lines);

        std::vector<std::string> ranked = rank_notable_strings(runs, 3);

        CHECK(ranked == std::vector<std::string>{"repeated string", "third one", "fourth one"});
    }

    SUBCASE("long strings are cut to the maximum length") {
        std::vector<std::string> lines = {std::string(500, 'a')};
        auto runs = runs_of(lines);

        std::vector<std::string> ranked = rank_notable_strings(runs, 3);

        REQUIRE(ranked.size() == 1);
        CHECK(ranked[0].size() == athena::evidence::k_max_string_length);
    }
}
