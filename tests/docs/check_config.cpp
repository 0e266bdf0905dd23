// Parses each configuration file named on the command line with the agent's own parser, so
// that the examples of the documentation are held to what the agent accepts.
#include <cstdio>
#include <exception>

#include "config.hpp"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fputs("usage: nlb-check-config FILE...\n", stderr);
        return 2;
    }
    int failed = 0;
    for (int i = 1; i < argc; ++i) {
        try {
            nlb::load_config(argv[i]);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s\n", e.what());
            failed = 1;
        }
    }
    return failed;
}
