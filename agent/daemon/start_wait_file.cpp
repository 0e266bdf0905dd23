// Written whole to a temporary name and renamed over: a crash midway leaves the earlier value
// or the new one, never a torn number. Not synced: a power cut reboots the host, and a reboot
// takes longer than any watchdog. Neither name is followed if it is a symlink, and only a
// regular file is read (the agent runs as root; replay_guard.cpp's floor likewise).
#include "start_wait_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace nlb {

namespace {
// "600000\n" and far more: a longer file is not ours.
constexpr std::size_t kMaxSize = 32;
} // namespace

std::int64_t StartWaitFile::read() const {
    // O_NONBLOCK: a FIFO put there must not hold the agent's start.
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return 0;
    struct stat st {};
    char buffer[kMaxSize + 1];
    std::size_t got = 0;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        while (got < sizeof(buffer)) {
            const ssize_t n = ::read(fd, buffer + got, sizeof(buffer) - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += static_cast<std::size_t>(n);
        }
    ::close(fd);
    if (got == 0 || got > kMaxSize)
        return 0;
    const char* end = buffer + got;
    if (end[-1] == '\n')
        --end;
    long long ms = 0;
    const auto [stop, ec] = std::from_chars(buffer, end, ms);
    if (ec != std::errc() || stop != end || ms < 0)
        return 0;
    return ms;
}

std::string StartWaitFile::keep(std::int64_t ms) {
    if (ms == kept_)
        return "";
    const std::string temp = path_ + ".new";
    std::string error;
    char text[kMaxSize];
    const int len = std::snprintf(text, sizeof(text), "%lld\n", static_cast<long long>(ms));
    const int fd =
        ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        error = "open " + temp + ": " + std::strerror(errno);
    } else {
        const ssize_t n = ::write(fd, text, static_cast<std::size_t>(len));
        const int write_errno = n < 0 ? errno : ENOSPC; // a short write: the disk is full
        ::close(fd);
        if (n != len)
            error = "write " + temp + ": " + std::strerror(write_errno);
        else if (std::rename(temp.c_str(), path_.c_str()) != 0)
            error = "rename " + temp + ": " + std::strerror(errno);
    }
    if (!error.empty()) {
        if (fd >= 0)
            ::unlink(temp.c_str()); // ours; not what a failed open found there
        const bool first = !failing_;
        failing_ = true;
        return first ? error : "";
    }
    kept_ = ms;
    failing_ = false;
    return "";
}

} // namespace nlb
