// The host's TCP sockets to the cluster's VIPs, from the kernel's socket table (sock_diag):
// the evidence for connections the socket program did not see established (they are older
// than it), and the check that every established record still has its socket.
#pragma once

#include <cstdint>
#include <vector>

#include <nlb/maps.h>

#include "dataplane_tables.hpp" // IpAddress

namespace nlb {

// TCP sockets of this network namespace whose local address is one of `vips` and that carry
// a connection (ESTABLISHED through LAST_ACK and CLOSING: not listening, not TIME_WAIT), as
// the client's packets name them; with `handshakes`, SYN_RECV too (TCP Fast Open's children
// and the listeners' pending handshakes, for an orphan check, which they only spare). Throws
// std::system_error naming the step.
std::vector<nlb_tuple> vip_connections(const std::vector<IpAddress>& vips, bool handshakes = false);

} // namespace nlb
