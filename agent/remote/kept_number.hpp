// A number kept in a file of its own across the agent's restarts (remote control's replay
// floor, the cluster's longest tolerance for the next start). The agent runs as root: neither
// the file nor its temporary name is followed if it is a symlink, only a regular file of a few
// bytes holding a number and nothing else is read, and the file is written whole under a
// temporary name (open_to_write) and renamed over, so a crash midway leaves the earlier number or
// the new one. Not synced: these files have to outlive the agent, not the machine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace nlb {

struct KeptNumber {
    std::optional<std::int64_t> value; // none: no file, or `error` says why not
    std::string error;                 // "PATH: <strerror>" or "PATH: not a number"
};

// A FIFO or a device at the path is "not a number", and never blocks the read.
KeptNumber read_kept_number(const std::string& path);

// Writes `value` through PATH.tmp; "" on success, else "PATH: <strerror>" (a short write
// reads as ENOSPC).
std::string write_kept_number(const std::string& path, std::int64_t value);

// Opens `path` to be written whole by the agent (created with mode 0600, truncated): never
// through a symlink, and only a regular file (O_NONBLOCK: a FIFO found there, no reader,
// is an error, never a wait; nothing is written into one or into a device). The descriptor,
// or -1 with `error` set to "PATH: <strerror>" or "PATH: not a regular file". What it found
// there is not its to remove. The kept numbers' temporary names and pushed.json's use it.
int open_to_write(const std::string& path, std::string& error);

} // namespace nlb
