// `athena providers --check`: one tiny request to each provider, all at once.
#include "providers/http_loop.hpp"
#include "providers/wire.hpp"

#include <athena/providers.hpp>

#include <fmt/format.h>

namespace athena {

std::vector<ProviderCheck> check_providers(const std::vector<ProviderConfig>& providers) {
    using namespace providers;
    std::vector<ProviderCheck> results(providers.size());
    EventLoop loop(providers.size() + 1);
    std::size_t pending = 0;

    for (std::size_t i = 0; i < providers.size(); ++i) {
        const ProviderConfig& provider = providers[i];
        results[i].provider = provider.name;
        if (!provider.has_credentials()) {
            results[i].message = "no API key";
            continue;
        }
        Conversation conversation;
        conversation.system = "You answer health checks.";
        conversation.user = "Reply with the single word ok.";
        conversation.wants_verdict_schema = false;
        conversation.max_output_tokens = 16;
        ++pending;
        loop.send(
            build_request(provider, conversation),
            TransferLimits{provider.timeout, provider.connect_timeout, provider.stall_timeout},
            [&results, &pending, &provider, i](HttpResponse&& response) {
                ProviderCheck& check = results[i];
                check.latency = response.latency;
                check.http_status = static_cast<int>(response.status);
                const AttemptResult result =
                    interpret_response(provider, response, std::chrono::system_clock::now());
                // The check asks for "ok", not a verdict: any answer of the model,
                // even one that is no verdict or a refusal, shows the provider works.
                check.is_ok = result.failure == FailureClass::none ||
                              result.failure == FailureClass::rejected_answer ||
                              result.failure == FailureClass::refused;
                check.message = check.is_ok ? "ok" : result.error.message;
                --pending;
            });
    }
    loop.run([&pending] { return pending == 0; });
    return results;
}

} // namespace athena
