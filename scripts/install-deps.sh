#!/bin/sh
# Installs what the build, the demo and the fault suite need on a fresh Debian/Ubuntu
# machine that has only python3 and pip: liblz4-dev and pkg-config (the CLZ4 target),
# nginx (the load balancer of the demo and of Tests/fault), iproute2 and iptables (the
# network-fault suite's namespaces, cuts and impairments), pytest (Tests/fault).
# Idempotent: installs only what is missing, and prints nothing when all is there.
set -eu

missing=""
pkg-config --exists liblz4 2>/dev/null || missing="$missing liblz4-dev"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing="$missing iproute2"
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing="$missing iptables"

if [ -n "$missing" ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
            echo "install-deps: need root (or sudo) to install:$missing" >&2; exit 1
        fi
    fi
    echo "install-deps: installing$missing"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import pytest' >/dev/null 2>&1; then
    echo "install-deps: installing pytest"
    "$PY" -m pip install -q pytest
fi
