// Kept as remote control's replay floor is (kept_number.hpp): a crash midway leaves the
// earlier value or the new one, never a torn number; a power cut reboots the host, and a
// reboot takes longer than any watchdog.
#include "start_wait_file.hpp"

#include "kept_number.hpp"

namespace nlb {

std::int64_t StartWaitFile::read() const {
    const KeptNumber kept = read_kept_number(path_);
    return kept.value && *kept.value > 0 ? *kept.value : 0;
}

std::string StartWaitFile::keep(std::int64_t ms) {
    if (ms == kept_)
        return "";
    std::string error = write_kept_number(path_, ms);
    if (!error.empty()) {
        const bool first = !failing_;
        failing_ = true;
        return first ? "write " + error : "";
    }
    kept_ = ms;
    failing_ = false;
    return "";
}

} // namespace nlb
