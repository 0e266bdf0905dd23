// The text of an errno value, for error messages. libbpf returns errors negated and sets
// errno positive; either sign gives the same text.
#pragma once

#include <cstring>
#include <string>

namespace nlb {

inline std::string errstr(int err) {
    return std::strerror(err < 0 ? -err : err);
}

} // namespace nlb
