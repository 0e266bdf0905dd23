#!/usr/bin/env bash
# A TCP Fast Open connection keeps its record through the orphan check (docs/dataplane.md,
# "Orphans"). Under TFO the server's stack makes a full socket at the SYN, which the socket
# program records as established at once; that socket stays SYN_RECV until the client's ACK.
# The orphan check, which ends records no socket of the listing carries, listed no SYN_RECV
# socket and ended such a record: the connection then lost its host at the next move. Here
# the client's ACKs are dropped (nftables in its namespace), so the child stays SYN_RECV
# across the agent's first orphan check, 30 s after its start; a record with no socket at all,
# written beside it, is the control that the check ran and ends what it should.
source "$(dirname "$0")/common.sh"
topo_init "nlbtfo-$$"
topo_add_host 1
topo_add_client 1
rules='[{"vip": "all", "ports": [7000, 7000], "protocol": "tcp", "mode": "multiple", "affinity": "single"}]'
host_config 1 "$rules"
# Server: TFO on, no cookie needed (0x200), so the first SYN with data makes the child.
ip netns exec "$TOPO-h1" sysctl -qw net.ipv4.ip_nonlocal_bind=1 net.ipv4.tcp_fastopen=0x203
ip netns exec "$TOPO-client" sysctl -qw net.ipv4.tcp_fastopen=0x5 # client, no cookie (0x4)
(exec ip netns exec "$TOPO-h1" python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
s.bind((sys.argv[1], 7000))
s.listen(16)
time.sleep(120)' "$CLUSTER_IP") &
TOPO_PIDS+=($!)
started=$SECONDS
topo_start_agent 1
wait_converged 1 20 1
check "the socket program runs (TFO children are recorded by it)" \
  test "$(nlbadm_h 1 --json stats | json 'd["connection_tables"]["socket_program"]')" = True

# The client's ACKs never leave: only its SYN (with the data) does.
ip netns exec "$TOPO-client" nft -f - <<'EOF'
table inet tfo {
  chain out {
    type filter hook output priority 0;
    tcp dport 7000 tcp flags & syn != syn drop
  }
}
EOF
(exec ip netns exec "$TOPO-client" python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("10.10.1.1", 45678))
s.sendto(b"hello", socket.MSG_FASTOPEN, (sys.argv[1], 7000))
time.sleep(120)' "$CLUSTER_IP") &
TOPO_PIDS+=($!)
synrecv() { ip netns exec "$TOPO-h1" ss -tnH state syn-recv '( sport = :7000 )' | wc -l; }
for _ in $(seq 50); do [ "$(synrecv)" -ge 1 ] && break; sleep 0.1; done
check "the server's stack made a TFO child, SYN_RECV" test "$(synrecv)" = 1

est=$TOPO_DIR/bpffs/h1/nlb_est4
# closed_ns of the record of client port PORT in nlb_est4 ("none" if there is none)
closed_ns() {
  bpftool -j map dump pinned "$est" | python3 -c '
import json, socket, sys
port = socket.htons(int(sys.argv[1]))
for e in json.load(sys.stdin):
    if e["formatted"]["key"]["sport"] == port:
        print(e["formatted"]["value"]["closed_ns"]); break
else:
    print("none")' "$1"
}
check "the socket program recorded it as established" test "$(closed_ns 45678)" = 0
# The control: a record of client 10.10.9.9:1234 whose socket never existed, opened at 1 ns.
vip_hex=$(printf '%02x ' ${CLUSTER_IP//./ })
bpftool map update pinned "$est" \
  key hex 0a 0a 09 09 $vip_hex 04 d2 1b 58 \
  value hex 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
check "the control record is in" test "$(closed_ns 1234)" = 0

orphans() { nlbadm_h 1 --json stats | json 'd["connection_tables"]["orphans_ended"]'; }
while ((SECONDS - started < 50)) && [ "$(orphans)" = 0 ]; do sleep 1; done
check "the orphan check ran and ended the control record ($(orphans) ended)" \
  test "$(closed_ns 1234)" != 0
check "... and only it: the TFO connection's record is open (closed_ns $(closed_ns 45678))" \
  test "$(closed_ns 45678)" = 0
check "... its socket still SYN_RECV" test "$(synrecv)" = 1
check "one orphan ended" test "$(orphans)" = 1
e2e_finish
