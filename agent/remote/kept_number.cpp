#include "kept_number.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace nlb {

namespace {

// "-9223372036854775808\n" fits; a longer file is not one of ours.
constexpr std::size_t kMaxSize = 32;

std::string error_of(const std::string& path, int err) {
    return path + ": " + std::strerror(err);
}

} // namespace

KeptNumber read_kept_number(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return {std::nullopt, errno == ENOENT ? "" : error_of(path, errno)};
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
    const char* end = buffer + got;
    if (got > 0 && end[-1] == '\n')
        --end;
    long long value = 0;
    const auto [stop, ec] = std::from_chars(buffer, end, value);
    if (got == 0 || got > kMaxSize || ec != std::errc() || stop != end)
        return {std::nullopt, path + ": not a number"};
    return {value, ""};
}

std::string write_kept_number(const std::string& path, std::int64_t value) {
    const std::string tmp = path + ".tmp";
    // O_NONBLOCK: a FIFO found there (no reader: ENXIO) must not block the agent's loop; and
    // only a regular file is written and renamed over the path, never a FIFO or a device.
    const int fd =
        ::open(tmp.c_str(),
               O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0600);
    if (fd < 0) // not ours to remove: what the open found there
        return errno == ENXIO ? tmp + ": not a regular file" : error_of(tmp, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return tmp + ": not a regular file";
    }
    char text[kMaxSize];
    const int len = std::snprintf(text, sizeof(text), "%lld\n", static_cast<long long>(value));
    const ssize_t n = ::write(fd, text, static_cast<std::size_t>(len));
    const int write_errno = n < 0 ? errno : ENOSPC; // a short write: the disk is full
    ::close(fd);
    std::string error;
    if (n != len)
        error = error_of(tmp, write_errno);
    else if (::rename(tmp.c_str(), path.c_str()) != 0)
        error = error_of(path, errno);
    if (!error.empty())
        ::unlink(tmp.c_str());
    return error;
}

} // namespace nlb
