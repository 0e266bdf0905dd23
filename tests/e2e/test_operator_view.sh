#!/usr/bin/env bash
# What nlbadm tells an operator about a host that stepped aside. A stopped host is no member:
# its query lists no members and no default host (it listed the epoch it had left, itself
# included, for good), and its stats count none. A port rule disabled or drained by nlbadm
# says so in query (`enabled` false, `control`), where it said enabled with no bucket. A
# stopped host is still a host of the cluster: a remote command it does not answer exits 3
# and names it (it exited 0 without a word, so a `start` to the cluster could miss it).
source "$(dirname "$0")/common.sh"
topo_init "nlbov-$$"
for i in 1 2 3; do topo_add_host "$i"; done
topo_add_client 1
HEARTBEAT_MS=100

KEY=$TOPO_DIR/cluster.key
"$NLBADM" keygen >"$KEY"
chmod 0600 "$KEY"
# Hosts 1 and 2 answer remote control, host 3 does not.
for i in 1 2 3; do
  on=true
  [ "$i" != 3 ] || on=false
  CLUSTER_EXTRA=", \"key_file\": \"$KEY\", \"remote_control\": $on" host_config "$i"
done
for i in 1 2 3; do topo_start_agent "$i"; done
wait_converged 3 20 1 2 3

members() { nlbadm_h "$1" --json query | json 'sorted(d["cluster"]["members"])'; }

# --- a stopped host is no member -------------------------------------------------------------
nlbadm_h 3 stop >/dev/null
deadline=$((SECONDS + 10))
until [ "$(members 1)" = "[1, 2]" ] || ((SECONDS > deadline)); do sleep 0.2; done
check "the cluster: members [1, 2]" test "$(members 1)" = "[1, 2]"
q3=$(nlbadm_h 3 --json query)
check "stopped host: state stopped" test "$(json 'd["host"]["state"]' <<<"$q3")" = stopped
check "stopped host: no members ($(json 'd["cluster"]["members"]' <<<"$q3"))" \
  test "$(json 'd["cluster"]["members"]' <<<"$q3")" = "[]"
check "stopped host: no default host" test "$(json 'd["cluster"]["default_host"]' <<<"$q3")" = 0
check "stopped host: stats count no member" \
  test "$(nlbadm_h 3 --json stats | json 'd["members"]')" = 0

# --- remote control: the stopped host is expected to answer ----------------------------------
set +e
ip netns exec "$TOPO-client" "$NLBADM" --json --cluster "$CLUSTER_IP" --key-file "$KEY" \
  --timeout 500 query >"$TOPO_DIR/admin.out" 2>"$TOPO_DIR/admin.err"
rc=$?
set -e
out=$(cat "$TOPO_DIR/admin.out")
check "remote query: exit 3, a host did not answer (rc=$rc)" test "$rc" = 3
check "remote query: hosts 1, 2 answer, host 3 missing" \
  test "$(json '(sorted(d["hosts"]), d["missing"])' <<<"$out")" = "(['1', '2'], [3])"
check "remote query: host 3 named on stderr" \
  grep -q "no answer from host 3 within 500 ms" "$TOPO_DIR/admin.err"

nlbadm_h 3 start >/dev/null
wait_converged 3 20 1 2 3
check "started again: host 3 a member" test "$(members 3)" = "[1, 2, 3]"

# --- per-rule control shows in query ---------------------------------------------------------
rule() { nlbadm_h 2 --json query | json '(d["rules"][0]["enabled"], d["rules"][0].get("control"))'; }
check "rule enabled: (True, 'enabled')" test "$(rule)" = "(True, 'enabled')"
nlbadm_h 2 disable all >/dev/null
check "after disable: (False, 'disabled') ($(rule))" test "$(rule)" = "(False, 'disabled')"
nlbadm_h 2 drain all >/dev/null
check "after drain: (False, 'draining') ($(rule))" test "$(rule)" = "(False, 'draining')"
check "text query: the rule's line says draining" grep -q '^  all .* draining ' <<<"$(nlbadm_h 2 query)"
nlbadm_h 2 enable all >/dev/null
check "after enable: (True, 'enabled') ($(rule))" test "$(rule)" = "(True, 'enabled')"
wait_converged 3 20 1 2 3

e2e_finish
