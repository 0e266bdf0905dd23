// Written whole to a temporary name and renamed over: a crash midway leaves the earlier value
// or the new one, never a torn number. Not synced: a power cut reboots the host, and a reboot
// takes longer than any watchdog.
#include "start_wait_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace nlb {

std::int64_t StartWaitFile::read() const {
    std::ifstream in(path_);
    long long ms = 0;
    if (!(in >> ms) || ms < 0)
        return 0;
    return ms;
}

std::string StartWaitFile::keep(std::int64_t ms) {
    if (ms == kept_)
        return "";
    const std::string temp = path_ + ".new";
    std::string error;
    if (std::FILE* f = std::fopen(temp.c_str(), "w")) {
        const bool written = std::fprintf(f, "%lld\n", static_cast<long long>(ms)) > 0;
        if (std::fclose(f) != 0 || !written)
            error = "write " + temp + ": " + std::strerror(errno);
        else if (std::rename(temp.c_str(), path_.c_str()) != 0)
            error = "rename " + temp + ": " + std::strerror(errno);
    } else {
        error = "open " + temp + ": " + std::strerror(errno);
    }
    if (!error.empty()) {
        std::remove(temp.c_str());
        const bool first = !failing_;
        failing_ = true;
        return first ? error : "";
    }
    kept_ = ms;
    failing_ = false;
    return "";
}

} // namespace nlb
