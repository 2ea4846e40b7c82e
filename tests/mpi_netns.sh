#!/usr/bin/env bash
# Usage: mpi_netns.sh PROGRAM ARGS...
# Runs PROGRAM as a 2-rank MPI job across two "hosts": two network
# namespaces made here, joined by a veth pair (10.77.0.1 and 10.77.0.2),
# one rank in each. mpirun runs in the first; the second host's Open MPI
# daemon is started through a stand-in for ssh that enters the other
# namespace, so ranks, daemons and the TCP transport talk over the veth
# exactly as two machines on a link would (no shared memory, no loopback).
# Passes PROGRAM's exit status through, after checking that the job's
# traffic crossed the link. Exits 77 (skipped) where namespaces cannot be
# made (not root, no CAP_SYS_ADMIN, no iproute2).
set -u
id=$$
ns0="dsv3n${id}a"; ns1="dsv3n${id}b"; v0="dv${id}a"; v1="dv${id}b"
tmp=$(mktemp -d /tmp/dsv3-netns.XXXXXX)
cleanup() { ip netns del "$ns0" 2>/dev/null; ip netns del "$ns1" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
if ! command -v ip >/dev/null || ! ip netns add "$ns0" 2>/dev/null; then
  echo "skipped: cannot create network namespaces here (needs root and iproute2)"; exit 77
fi
ip netns add "$ns1" && ip link add "$v0" type veth peer name "$v1" && ip link set "$v0" netns "$ns0" &&
  ip link set "$v1" netns "$ns1" && ip -n "$ns0" addr add 10.77.0.1/24 dev "$v0" &&
  ip -n "$ns1" addr add 10.77.0.2/24 dev "$v1" && ip -n "$ns0" link set "$v0" up && ip -n "$ns1" link set "$v1" up &&
  ip -n "$ns0" link set lo up && ip -n "$ns1" link set lo up ||
  { echo "skipped: cannot set up the veth pair between the namespaces"; exit 77; }
# The stand-in for ssh: mpirun calls it as `agent [options] HOST COMMAND`.
cat >"$tmp/ssh" <<SSH
#!/bin/sh
while [ "\${1#-}" != "\$1" ]; do shift; done
host=\$1; shift
case \$host in 10.77.0.2) ns=$ns1;; *) ns=$ns0;; esac
exec ip netns exec \$ns sh -c "\$*"
SSH
chmod +x "$tmp/ssh"
printf "10.77.0.1 slots=1\n10.77.0.2 slots=1\n" >"$tmp/hosts"
tx() { ip -n "$ns0" -s link show "$v0" | awk '/TX:/{getline; print $1}'; }
before=$(tx)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
ip netns exec "$ns0" mpirun --hostfile "$tmp/hosts" --mca plm_rsh_agent "$tmp/ssh" --mca pml ob1 \
  --mca btl self,tcp --mca oob_tcp_if_include 10.77.0.0/24 --mca btl_tcp_if_include 10.77.0.0/24 \
  -x OMP_WAIT_POLICY -x OMP_NUM_THREADS -x ASAN_OPTIONS -np 2 "$@"
rc=$?
sent=$(( $(tx) - before ))
echo "netns: 2 hosts over a veth pair, exit $rc, $sent bytes sent from host 0 over the link"
[ "$rc" -eq 0 ] && [ "$sent" -le 0 ] && { echo "FAIL: no traffic crossed the link"; exit 1; }
exit "$rc"
