#include "probe_verdict.hpp"

#include <algorithm>

namespace nlb {

ProbeVerdict::ProbeVerdict(std::uint32_t rise, std::uint32_t fall)
    : rise_(std::max<std::uint32_t>(rise, 1)), fall_(std::max<std::uint32_t>(fall, 1)) {}

bool ProbeVerdict::record(bool passed) {
    if (passed == up_) {
        streak_ = 0; // a result that agrees with the verdict starts the count over
        return false;
    }
    if (++streak_ < (up_ ? fall_ : rise_))
        return false;
    up_ = !up_;
    streak_ = 0;
    return true;
}

} // namespace nlb
