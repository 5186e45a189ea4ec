#include "cli/app.hpp"

int main(int argc, char** argv) {
    return athena::cli::run(argc, argv);
}
