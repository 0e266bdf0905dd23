#include "replay_guard.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace nlb::remote {

namespace {

// "1700000000000\n": far below this; a longer file is not ours.
constexpr std::size_t kMaxStateSize = 32;

std::string error_of(const std::string& path) {
    return path + ": " + std::strerror(errno);
}

} // namespace

std::optional<std::int64_t> read_replay_floor(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return std::nullopt;
    if (fd < 0)
        throw std::runtime_error(error_of(path));
    char buffer[kMaxStateSize + 1];
    std::size_t got = 0;
    while (got < sizeof(buffer)) {
        const ssize_t n = ::read(fd, buffer + got, sizeof(buffer) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    std::int64_t value = 0;
    const char* end = buffer + got;
    if (got > 0 && end[-1] == '\n')
        --end;
    const auto [stop, ec] = std::from_chars(buffer, end, value);
    if (got == 0 || got > kMaxStateSize || ec != std::errc() || stop != end)
        throw std::runtime_error(path + ": not a timestamp");
    return value;
}

ReplayGuard::ReplayGuard(std::int64_t window_ms, std::size_t capacity)
    : window_ms_(window_ms), capacity_(capacity) {
    seen_.reserve(capacity_);
}

ReplayGuard::ReplayGuard(std::int64_t window_ms, std::string state_file, std::int64_t now_ms,
                         std::size_t capacity)
    : ReplayGuard(window_ms, capacity) {
    state_file_ = std::move(state_file);
    // Without a saved timestamp (first start, a reboot emptied /run, a damaged file) the
    // start is the floor: a request run before it was stamped before it, unless the
    // sender's clock ran ahead of ours by more than the time since (NTP keeps that to
    // milliseconds, a restart takes longer). With one, every request ever run is covered,
    // whatever the clocks.
    floor_ = now_ms;
    try {
        if (auto saved = read_replay_floor(state_file_)) {
            saved_ = *saved;
            floor_ = std::max(floor_, *saved);
        }
    } catch (const std::runtime_error& e) {
        load_error_ = e.what();
    }
}

ReplayGuard::Verdict ReplayGuard::check(const Nonce& nonce, std::int64_t timestamp_ms,
                                        std::int64_t now_ms) {
    if (seen_.count(nonce))
        return Verdict::replay;
    if (timestamp_ms <= floor_)
        return Verdict::before_start;
    // Sweeping costs one pass over the table, so it is done only when the table is full and
    // some entry is known to have expired: at most once per expiry, however many requests
    // come.
    if (seen_.size() >= capacity_ && now_ms > earliest_expiry_)
        forget_expired(now_ms);
    if (seen_.size() >= capacity_)
        return Verdict::full;
    // Saved before the request runs: a crash right after it must not let a copy in. One small
    // write and a rename per request that raises the timestamp, i.e. per operator command:
    // nothing next to running it. Only key holders get here, at most `capacity_` times per
    // window.
    if (!state_file_.empty() && timestamp_ms > saved_ && !save(timestamp_ms))
        return Verdict::unsaved;
    const std::int64_t expiry = timestamp_ms + window_ms_;
    earliest_expiry_ = seen_.empty() ? expiry : std::min(earliest_expiry_, expiry);
    seen_.emplace(nonce, expiry);
    return Verdict::fresh;
}

bool ReplayGuard::save(std::int64_t timestamp_ms) {
    // Atomic: a reader sees the old file or the new one, never a part. Not fsynced: the file
    // has to outlive the agent, not the machine. After a crash of the machine (or a reboot,
    // which empties /run) the start is the floor, which covers what the file would have
    // held as long as the clocks agree closer than a boot takes.
    const std::string tmp = state_file_ + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        save_error_ = error_of(tmp);
        return false;
    }
    char text[kMaxStateSize];
    const int len =
        std::snprintf(text, sizeof(text), "%lld\n", static_cast<long long>(timestamp_ms));
    const ssize_t n = ::write(fd, text, static_cast<std::size_t>(len));
    const int write_errno = n < 0 ? errno : ENOSPC; // a short write: the disk is full
    ::close(fd);
    if (n != len) {
        errno = write_errno;
        save_error_ = error_of(tmp);
        ::unlink(tmp.c_str());
        return false;
    }
    if (::rename(tmp.c_str(), state_file_.c_str()) != 0) {
        save_error_ = error_of(state_file_);
        ::unlink(tmp.c_str());
        return false;
    }
    saved_ = timestamp_ms;
    save_error_.clear();
    return true;
}

void ReplayGuard::forget_expired(std::int64_t now_ms) {
    std::int64_t earliest = std::numeric_limits<std::int64_t>::max();
    for (auto it = seen_.begin(); it != seen_.end();) {
        if (it->second < now_ms) {
            it = seen_.erase(it);
        } else {
            earliest = std::min(earliest, it->second);
            ++it;
        }
    }
    earliest_expiry_ = earliest;
}

} // namespace nlb::remote
