#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine, and nothing when it
# is all there: liblz4-dev (the LZ4 library), nginx (the load balancer of the demo and the
# fault suite), pytest (the process-level fault suite).
set -euo pipefail
missing=()
pkg-config --exists liblz4 2>/dev/null || missing+=(liblz4-dev pkg-config)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -c 'import pytest' 2>/dev/null || python3 -m pip install -q pytest
