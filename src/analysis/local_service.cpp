#include <athena/analysis_service.hpp>

namespace athena {
namespace {

class LocalService final : public AnalysisService {
public:
    explicit LocalService(std::unique_ptr<Analyser> analyser) : m_analyser(std::move(analyser)) {}

    std::string profile() const override { return m_analyser->profile(); }

    void submit(AnalysisRequest request, std::function<void(AnalysisOutcome&&)> done) override {
        AnalysisOutcome outcome;
        outcome.provider = m_analyser->name();
        outcome.model = m_analyser->model();
        outcome.verdict = m_analyser->analyse(request.evidence);
        done(std::move(outcome));
    }

    void shutdown(std::chrono::milliseconds) override {}

private:
    std::unique_ptr<Analyser> m_analyser;
};

} // namespace

std::unique_ptr<AnalysisService> make_local_service(std::unique_ptr<Analyser> analyser) {
    return std::make_unique<LocalService>(std::move(analyser));
}

} // namespace athena
