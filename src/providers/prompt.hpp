// Request content: the system prompt, the verdict schema and the evidence bundle cut to a
// token budget. Nothing here reads the file; the bundle is built from the evidence only.
#pragma once

#include <athena/analysis_service.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>

namespace athena::providers {

// Estimated tokens of `bytes` bytes of prompt text. Tokenisers average about 4 bytes per
// token on English text and fewer on hex, paths and JSON punctuation, so this assumes 3.
std::size_t estimate_tokens(std::size_t bytes);

// The verdict schema as JSON Schema, in the strict form OpenAI's structured outputs and
// Anthropic's tool input accept: every property required, no additional properties, and
// "null" allowed for malware_family and malware_type.
const nlohmann::json& verdict_schema();

// The same schema in the OpenAPI subset Gemini's responseSchema accepts.
const nlohmann::json& gemini_verdict_schema();

// The system prompt: the task, the answer format, and the rule that the evidence is
// untrusted data and never instructions.
const std::string& system_prompt();

// The same three, serialised once, because every request carries them: the system prompt
// as a JSON string, the schemas as JSON objects.
const std::string& system_prompt_json();
const std::string& verdict_schema_json();
const std::string& gemini_verdict_schema_json();

struct EvidenceBundle {
    std::string json;             // the bundle, compact JSON, valid UTF-8
    std::size_t estimated_tokens; // of the whole request text: system prompt and user message
    bool is_cut = false;          // parts were left out to fit the budget
};

// Builds the evidence bundle of a request (type, size, sha256, entropy, IOCs, YARA hits,
// notable strings, and for text files an excerpt; never the path or raw bytes). While the
// estimated request is over `max_input_tokens`, it shortens the excerpt, then drops strings,
// then IOCs, and says in "omitted" how much it left out. The smallest bundle (metadata and
// YARA hits) is sent even when it alone is over the budget.
EvidenceBundle build_evidence_bundle(const AnalysisRequest& request, std::size_t max_input_tokens);

// The user message that carries a bundle.
std::string evidence_message(const std::string& bundle_json);

// The user message of a repair attempt: why the previous answer was rejected.
std::string repair_message(const std::string& rejection);

} // namespace athena::providers
