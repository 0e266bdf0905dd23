// nlbadm from command line to exit code: parse, ask the agent or answer locally, print.
// Separate from main() so that tests run it with their own streams.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace nlb::cli {

// args: argv[1..]. Results go to `out`, errors to `err` as one line "nlbadm: ...". Returns
// the exit code of docs/control.md (0 ok, 1 refused, 2 usage, 3 unreachable).
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

} // namespace nlb::cli
