// nlbadm: the operator's and scripts' tool (DESIGN.md §5, docs/control.md).
#include <iostream>

#include "nlbadm.hpp"

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    int code = nlb::cli::run(args, std::cout, std::cerr);
    std::cout.flush();
    if (!std::cout)
        return 1; // stdout closed or full: the result did not reach anyone
    return code;
}
