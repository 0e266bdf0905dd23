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

int open_to_write(const std::string& path, std::string& error) {
    const int fd =
        ::open(path.c_str(),
               O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0600);
    if (fd < 0) {
        error = errno == ENXIO ? path + ": not a regular file" : error_of(path, errno);
        return -1;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        error = path + ": not a regular file";
        return -1;
    }
    return fd;
}

std::string write_kept_number(const std::string& path, std::int64_t value) {
    const std::string tmp = path + ".tmp";
    std::string error;
    const int fd = open_to_write(tmp, error);
    if (fd < 0)
        return error;
    char text[kMaxSize];
    const int len = std::snprintf(text, sizeof(text), "%lld\n", static_cast<long long>(value));
    const ssize_t n = ::write(fd, text, static_cast<std::size_t>(len));
    const int write_errno = n < 0 ? errno : ENOSPC; // a short write: the disk is full
    ::close(fd);
    if (n != len)
        error = error_of(tmp, write_errno);
    else if (::rename(tmp.c_str(), path.c_str()) != 0)
        error = error_of(path, errno);
    if (!error.empty())
        ::unlink(tmp.c_str());
    return error;
}

} // namespace nlb
