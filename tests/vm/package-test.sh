#!/bin/bash
# The package test, run as root inside a booted Debian 12 system (systemd as
# init, Debian's kernel) by `cargo xtask test`'s package layer; see
# xtask/src/system_vm.rs. The share holds sip-xdp.deb and kamailio.cfg.
#
# The machine is the edge: Kamailio listens on it, sip-xdp.service filters
# its two veths. A trunk namespace (198.18.1.2, allowlisted) and an outside
# namespace (198.18.2.2-5: a stranger, a customer who scans, another
# stranger) send SIP OPTIONS with netcat; an answer within a second means
# the packet reached Kamailio.
set -u
SHARE=/mnt/vmtest
FAILED=0

ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; FAILED=1; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
section() { echo; echo "=== $*"; }
# quietly CMD...: its output only if it fails.
quietly() { "$@" > /tmp/quiet.log 2>&1 || { cat /tmp/quiet.log; return 1; }; }
export DEBIAN_FRONTEND=noninteractive

options() { # from-address seq
    printf 'OPTIONS sip:probe@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:5070;branch=z9hG4bK-vm%s\r\nMax-Forwards: 70\r\nFrom: <sip:probe@%s>;tag=%s\r\nTo: <sip:probe@%s>\r\nCall-ID: vm-%s-%s\r\nCSeq: %s OPTIONS\r\nUser-Agent: %s\r\nContent-Length: 0\r\n\r\n' \
        "$2" "$1" "$3" "$1" "$3" "$2" "$1" "$3" "$3" "${4:-vm-probe}"
}
# answered NS FROM EDGE [USER-AGENT]: does an OPTIONS get an answer?
answered() {
    local seq=$RANDOM
    options "$2" "$3" "$seq" "${4:-vm-probe}" |
        ip netns exec "$1" timeout 3 nc -u -w 1 -s "$2" -p 5070 "$3" 5060 2>/dev/null | grep -q '^SIP/2.0'
}
dropped() { ! answered "$@"; }

section "the network: the machine is the edge"
ip netns add trunk
ip netns add outside
ip link add et type veth peer name pt netns trunk
ip link add eo type veth peer name po netns outside
ip addr add 198.18.1.1/24 dev et
ip addr add 198.18.2.1/24 dev eo
ip addr add 2001:2:0:1::1/64 dev et nodad
ip addr add 2001:2:0:2::1/64 dev eo nodad
ip link set et up
ip link set eo up
ip -n trunk addr add 198.18.1.2/24 dev pt
ip -n outside addr add 198.18.2.2/24 dev po
for a in 3 4 5; do ip -n outside addr add 198.18.2.$a/32 dev po; done
for ns in trunk outside; do ip -n $ns link set lo up; done
ip -n trunk link set pt up
ip -n outside link set po up
mkdir -p /run/kamailio-vm
kamailio -DD -E -f "$SHARE/kamailio.cfg" -Y /run/kamailio-vm -w /run/kamailio-vm -m 32 -M 4 > /run/kamailio-vm/log 2>&1 &
for _ in $(seq 50); do answered trunk 198.18.1.2 198.18.1.1 && break; sleep 0.2; done
check "Kamailio answers the trunk before sip-xdp is installed" answered trunk 198.18.1.2 198.18.1.1 ||
    cat /run/kamailio-vm/log
check "and the stranger too" answered outside 198.18.2.2 198.18.2.1

section "install"
cp "$SHARE/sip-xdp.deb" /tmp/
check "apt-get install ./sip-xdp.deb" quietly apt-get install -y /tmp/sip-xdp.deb
dpkg -L sip-xdp > /tmp/files
check "the binary in /usr/sbin" test -x /usr/sbin/sip-xdp
check "the config is a conffile" grep -qx /etc/sip-xdp/sip-xdp.toml /var/lib/dpkg/info/sip-xdp.conffiles
check "a man page" sh -c 'ls /usr/share/man/man8/sip-xdp*.8* >/dev/null'
check "the dashboard" sh -c 'ls /usr/share/sip-xdp/ | grep -qi dashboard'
echo "--- sip-xdp doctor on $(uname -r)"
sip-xdp doctor --iface et --iface eo
check "doctor: ready on this kernel" sh -c 'sip-xdp doctor --iface et --iface eo | grep -q "^ready:"'

section "enforce"
cat > /etc/sip-xdp/sip-xdp.toml <<'EOF'
interfaces = ["et", "eo"]
[filter]
ports = [5060, 5061]
default_class = "deny"
mode = "enforce"
[allow]
cidrs = ["198.18.1.2/32"]
[[rule]]
cidrs = ["198.18.2.3/32"]
class = "customers"
[profile.customers]
register_per_sec = 5
register_burst = 20
requests_per_sec = 50
requests_burst = 200
EOF
check "systemctl restart sip-xdp" systemctl restart sip-xdp
check "the service is active" systemctl is-active --quiet sip-xdp
echo "--- systemctl status sip-xdp"
systemctl status --no-pager --lines=12 sip-xdp
check "the trunk passes" answered trunk 198.18.1.2 198.18.1.1
check "the stranger is dropped" dropped outside 198.18.2.2 198.18.2.1
check "the customer passes" answered outside 198.18.2.3 198.18.2.1
check "the customer scanning with sipvicious' User-Agent is dropped" dropped outside 198.18.2.3 198.18.2.1 friendly-scanner
check "and banned: its plain OPTIONS is dropped now" dropped outside 198.18.2.3 198.18.2.1
check "ban list names it" sh -c 'sip-xdp ban list | grep -q "198.18.2.3.*scanner"'

section "reload"
sed -i 's|cidrs = \["198.18.1.2/32"\]|cidrs = ["198.18.1.2/32", "198.18.2.2/32"]|' /etc/sip-xdp/sip-xdp.toml
check "systemctl reload sip-xdp" systemctl reload sip-xdp
for _ in $(seq 20); do answered outside 198.18.2.2 198.18.2.1 && break; sleep 0.5; done
check "the allowlist change applies: the stranger now passes" answered outside 198.18.2.2 198.18.2.1
check "the trunk still passes" answered trunk 198.18.1.2 198.18.1.1

section "SIGKILL"
pid=$(systemctl show -p MainPID --value sip-xdp)
check "systemctl kill -s KILL sip-xdp" systemctl kill -s KILL sip-xdp
check "the other stranger is dropped with the controller dead or restarting" dropped outside 198.18.2.4 198.18.2.1
for _ in $(seq 60); do
    new=$(systemctl show -p MainPID --value sip-xdp)
    [ "$new" != 0 ] && [ "$new" != "$pid" ] && systemctl is-active --quiet sip-xdp && break
    sleep 0.5
done
check "systemd restarted it (Restart=on-failure)" test "$new" != "$pid" -a "$new" != 0
check "the restart adopted the pinned filter" sh -c 'journalctl -u sip-xdp --no-pager -o cat | grep -q "eo: adopted the pinned filter"'
check "the ban survived" sh -c 'sip-xdp ban list | grep -q "198.18.2.3"'
check "the other stranger is still dropped" dropped outside 198.18.2.4 198.18.2.1

section "stop"
check "systemctl stop sip-xdp" systemctl stop sip-xdp
check "detached: the other stranger reaches Kamailio" answered outside 198.18.2.4 198.18.2.1
check "no XDP program on eo" sh -c '! ip -d link show dev eo | grep -q xdp'

echo "--- journalctl -u sip-xdp"
journalctl -u sip-xdp --no-pager -o short | tail -40
check "the journal has the start line" sh -c 'journalctl -u sip-xdp --no-pager -o cat | grep -q "filtering;"'
check "the journal has the ban line" sh -c 'journalctl -u sip-xdp --no-pager -o cat | grep -q "event=ban source=198.18.2.3 reason=scanner"'

section "purge"
check "apt-get purge sip-xdp" quietly apt-get purge -y sip-xdp
check "no pins" test ! -e /sys/fs/bpf/sip-xdp
check "no unit" sh -c '! systemctl cat sip-xdp >/dev/null 2>&1'
check "no config" test ! -e /etc/sip-xdp
check "no files of the package" sh -c 'for f in $(cat /tmp/files); do [ -d "$f" ] || [ ! -e "$f" ] || exit 1; done'
check "dpkg knows it no more" sh -c '! dpkg -s sip-xdp >/dev/null 2>&1'

echo
if [ $FAILED = 0 ]; then echo "package test: all checks passed on $(uname -r)"; else echo "package test: FAILED on $(uname -r)"; fi
exit $FAILED
