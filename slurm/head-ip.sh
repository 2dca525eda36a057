#!/usr/bin/env bash
# The address by which the other nodes of a Ray cluster reach this node; never a loopback address.
#
#   bash slurm/head-ip.sh [PEER]     # prints "ADDRESS REASON"; slurm/tune.sh runs it on the head node
#
# The first IPv4 address that is not loopback (127.0.0.0/8), unspecified or link-local, from:
#   1. the route to PEER (another node of the job): the source address of `ip -4 route get PEER-ADDRESS`,
#      i.e. the interface that reaches the other nodes (PEER's address from `getent ahostsv4 PEER`);
#   2. the host name: `hostname --ip-address` (what Ray's Slurm recipe uses; on stock Debian and Ubuntu
#      nodes it is 127.0.1.1 or 127.0.0.1, and skipped);
#   3. the default route: the source address of `ip -4 route get 1.1.1.1`, the interface Ray itself picks
#      (a routing-table query, nothing is sent);
#   4. the host's addresses: `hostname -I`, in its order.
# Exits 1 with a message when none gives one (set LOTJ_RAY_HEAD_IP then).
set -uo pipefail

usable() {  # usable ADDRESS: an IPv4 address other nodes can use
    [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || return 1
    case $1 in
    127.* | 0.* | 169.254.*) return 1 ;;
    esac
}

first_usable() {  # first_usable ADDRESS...: prints the first usable one
    local a
    for a in "$@"; do
        if usable "$a"; then
            echo "$a"
            return 0
        fi
    done
    return 1
}

route_src() {  # route_src DEST: the source address of this node's route to DEST
    local words k
    command -v ip >/dev/null || return 1
    read -r -a words < <(ip -4 -o route get "$1" 2>/dev/null | head -n 1) || return 1
    for ((k = 0; k + 1 < ${#words[@]}; k++)); do
        if [[ ${words[k]} == src ]]; then
            usable "${words[k + 1]}" && echo "${words[k + 1]}" && return 0
        fi
    done
    return 1
}

peer=${1:-}
if [[ -n $peer ]] && command -v getent >/dev/null; then
    mapfile -t peer_ips < <(getent ahostsv4 "$peer" 2>/dev/null | awk '{print $1}')
    if peer_ip=$(first_usable "${peer_ips[@]}") && ip=$(route_src "$peer_ip"); then
        echo "$ip source address of the route to node $peer ($peer_ip)"
        exit 0
    fi
fi
read -r -a ips < <(hostname --ip-address 2>/dev/null)
if ip=$(first_usable "${ips[@]}"); then
    echo "$ip the host name's address (hostname --ip-address: ${ips[*]})"
    exit 0
fi
if ip=$(route_src 1.1.1.1); then
    echo "$ip source address of the default route, as Ray picks (hostname --ip-address gave ${ips[*]:-nothing})"
    exit 0
fi
read -r -a all < <(hostname -I 2>/dev/null)
if ip=$(first_usable "${all[@]}"); then
    echo "$ip first non-loopback address of the host (hostname -I: ${all[*]}; hostname --ip-address gave ${ips[*]:-nothing}; no default route)"
    exit 0
fi
echo "head-ip.sh: no address other nodes can reach on $(hostname): hostname --ip-address gave" \
    "'${ips[*]:-}', hostname -I '${all[*]:-}', no route; set LOTJ_RAY_HEAD_IP" >&2
exit 1
