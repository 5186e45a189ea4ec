// Analysers turn evidence into a verdict. The builtin analyser needs no network and no key;
// AI providers implement the same contract later.
#pragma once

#include <athena/error.hpp>
#include <athena/evidence.hpp>
#include <athena/verdict.hpp>

#include <memory>
#include <string>

namespace athena {

class Analyser {
public:
    virtual ~Analyser() = default;

    // Short provider name used in records and reports, e.g. "builtin".
    virtual std::string name() const = 0;
    // Model or engine version, e.g. "builtin-1".
    virtual std::string model() const = 0;
    // Identifies everything that shapes the verdict (analyser, its version, rule set hash,
    // evidence extractor version). Part of the cache key: a new profile re-analyses.
    virtual std::string profile() const = 0;

    // Thread-safe. Errors: kind "analysis".
    virtual Result<Verdict> analyse(const Evidence& evidence) const = 0;
};

// The builtin analyser: judges YARA hits, entropy, IOCs and file type with fixed rules.
// rule_set_hash is RuleSet::content_hash() (or empty without rules).
std::unique_ptr<Analyser> make_builtin_analyser(std::string rule_set_hash);

} // namespace athena
