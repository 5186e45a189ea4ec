#include "cli/completion.hpp"

#include "cli/app.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

namespace athena::cli {
namespace {

// One command path ("scan", "cache stats") with its long and short option names.
struct CommandWords {
    std::string path;
    std::vector<std::string> subcommands;
    std::vector<std::string> options;
};

// Option groups are nameless subcommands in CLI11; their options belong to the parent.
void add_options(const CLI::App& command, CommandWords& words) {
    const auto add_word = [&](std::string word) {
        if (std::find(words.options.begin(), words.options.end(), word) == words.options.end()) {
            words.options.push_back(std::move(word));
        }
    };
    for (const CLI::Option* option : command.get_options()) {
        for (const std::string& name : option->get_lnames()) {
            add_word("--" + name);
        }
        for (const std::string& name : option->get_snames()) {
            add_word("-" + name);
        }
    }
    for (const CLI::App* sub : command.get_subcommands([](const CLI::App*) { return true; })) {
        if (sub->get_name().empty()) {
            add_options(*sub, words);
        }
    }
}

void collect(const CLI::App& command, const std::string& path, std::vector<CommandWords>& out) {
    const auto named = command.get_subcommands(
        [](const CLI::App* sub) { return !sub->get_name().empty(); });
    CommandWords words;
    words.path = path;
    for (const CLI::App* sub : named) {
        words.subcommands.push_back(sub->get_name());
    }
    add_options(command, words);
    out.push_back(words);
    for (const CLI::App* sub : named) {
        collect(*sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), out);
    }
}

std::string join(const std::vector<std::string>& words) {
    std::string out;
    for (const std::string& word : words) {
        out += (out.empty() ? "" : " ") + word;
    }
    return out;
}

std::string bash_script(const std::vector<CommandWords>& commands) {
    std::string cases;
    for (const CommandWords& command : commands) {
        cases += fmt::format("        \"{}\") words=\"{} {}\" ;;\n", command.path,
                             join(command.subcommands), join(command.options));
    }
    return fmt::format(R"(# bash completion for athena; load with: source <(athena completion bash)
_athena() {{
    local cur path word words i
    cur=${{COMP_WORDS[COMP_CWORD]}}
    path=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        case "$word" in
        -*) ;;
        *)
            case " $(_athena_subcommands "$path") " in
            *" $word "*) path="${{path:+$path }}$word" ;;
            esac
            ;;
        esac
    done
    case "$path" in
{}        *) words="" ;;
    esac
    if [[ $cur == -* || -z $path ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words" -- "$cur") $(compgen -f -- "$cur"))
    fi
}}
_athena_subcommands() {{
    case "$1" in
{}    esac
}}
complete -F _athena athena
)",
                       cases, [&] {
                           std::string subs;
                           for (const CommandWords& command : commands) {
                               subs += fmt::format("    \"{}\") echo \"{}\" ;;\n", command.path,
                                                   join(command.subcommands));
                           }
                           return subs;
                       }());
}

std::string zsh_script(const std::vector<CommandWords>& commands) {
    // zsh runs bash completion functions through bashcompinit, which keeps one source of
    // truth for both shells.
    return "#compdef athena\n# zsh completion for athena; load with: "
           "source <(athena completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n" +
           bash_script(commands);
}

std::string fish_script(const std::vector<CommandWords>& commands) {
    std::string out = "# fish completion for athena; load with: athena completion fish | source\n"
                      "complete -c athena -f\n";
    for (const CommandWords& command : commands) {
        const std::string condition =
            command.path.empty()
                ? "__fish_use_subcommand"
                : fmt::format("__fish_seen_subcommand_from {}",
                              command.path.substr(command.path.rfind(' ') + 1));
        for (const std::string& sub : command.subcommands) {
            out += fmt::format("complete -c athena -n '{}' -a {}\n", condition, sub);
        }
        for (const std::string& option : command.options) {
            if (option.starts_with("--")) {
                out += fmt::format("complete -c athena -n '{}' -l {}\n", condition,
                                   option.substr(2));
            } else {
                out += fmt::format("complete -c athena -n '{}' -s {}\n", condition,
                                   option.substr(1));
            }
        }
    }
    return out;
}

} // namespace

std::string completion_script(const CLI::App& app, const std::string& shell) {
    std::vector<CommandWords> commands;
    collect(app, "", commands);
    if (shell == "bash") {
        return bash_script(commands);
    }
    if (shell == "zsh") {
        return zsh_script(commands);
    }
    if (shell == "fish") {
        return fish_script(commands);
    }
    return {};
}

void add_completion_command(CLI::App& app, CommandLine& line) {
    CLI::App* completion = app.add_subcommand("completion", "print a shell completion script");
    auto shell = std::make_shared<std::string>();
    completion->add_option("shell", *shell, "bash, zsh or fish")
        ->required()
        ->check(CLI::IsMember({"bash", "zsh", "fish"}));
    completion->callback([&app, &line, shell] {
        line.command = "completion";
        line.action = [&app, shell](const CommandLine&, const Settings&) {
            std::fputs(completion_script(app, *shell).c_str(), stdout);
            return k_exit_clean;
        };
    });
}

} // namespace athena::cli
