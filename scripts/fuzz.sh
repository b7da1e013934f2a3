#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (README, "Fuzzing") in .build-fuzz and runs each.
#
#   scripts/fuzz.sh                  every target for FUZZ_SECONDS (default 600) each: `make fuzz`
#   scripts/fuzz.sh --short          every target for FUZZ_SECONDS (default 20) each: CI
#   scripts/fuzz.sh --seeds          rewrites the generated seeds in Fixtures/fuzz
#   scripts/fuzz.sh FuzzFrameDecoder only the targets named
#
# A target's new inputs accumulate in .build-fuzz/corpus/<target> (kept between runs); a
# crash, leak, timeout or out-of-memory leaves its input in .build-fuzz/artifacts/<target>/,
# prints that path, and makes the script exit non-zero. Replay one with
#   .build-fuzz/release/<target> <input>
set -euo pipefail
cd "$(dirname "$0")/.."

mode=long
targets=()
for argument in "$@"; do
    case "$argument" in
        --short) mode=short ;;
        --seeds) mode=seeds ;;
        Fuzz*) targets+=("$argument") ;;
        *) echo "usage: $0 [--short|--seeds] [target...]" >&2; exit 2 ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    targets=(FuzzFrameDecoder FuzzAuthenticatedFrames FuzzBinarySerializer FuzzHTTPInputs)
fi
if [ "$mode" = short ]; then seconds=${FUZZ_SECONDS:-20}; else seconds=${FUZZ_SECONDS:-600}; fi

swift=${SWIFT:-swift}
# Where and how to build: release in .build-fuzz by default. CI passes
# FUZZ_BUILD_PATH=.build FUZZ_CONFIGURATION=debug, to reuse what `make test` compiled there
# (BoringSSL, NIO's C shims: the C targets do not take the Swift flags), which cuts minutes
# off a fresh build; the Swift modules are compiled again, instrumented, so a later plain
# `swift build` in that path compiles them again too: not for a developer's own .build.
build_path=${FUZZ_BUILD_PATH:-.build-fuzz}
configuration=${FUZZ_CONFIGURATION:-release}
bin="$build_path/$configuration"
state=.build-fuzz

# The seeds each target starts from, besides its own corpus.
seeds() {
    case "$1" in
        FuzzFrameDecoder) echo "Fixtures/frames" ;;
        *) echo "Fixtures/fuzz/$1" ;;
    esac
}

start=$(date +%s)
mkdir -p "$state"
for target in "${targets[@]}"; do
    echo "== building $target"
    # The sanitizers apply to every module, so that coverage reaches into the libraries.
    if ! SESSION_CLUSTER_FUZZ=1 "$swift" build -c "$configuration" --build-path "$build_path" \
        -Xswiftc -sanitize=fuzzer,address --product "$target" > "$state/build-$target.log" 2>&1; then
        cat "$state/build-$target.log" >&2
        echo "fuzz: building $target failed" >&2
        exit 1
    fi
done
echo "== built in $(( $(date +%s) - start )) s"

if [ "$mode" = seeds ]; then
    for target in FuzzAuthenticatedFrames FuzzBinarySerializer; do
        rm -rf "Fixtures/fuzz/$target"
        SESSION_CLUSTER_FUZZ_WRITE_SEEDS="Fixtures/fuzz/$target" "$bin/$target"
    done
    # Cookie header, newline, request target.
    dir=Fixtures/fuzz/FuzzHTTPInputs
    rm -rf "$dir" && mkdir -p "$dir"
    printf 'SESSION_ID=AAECAwQFBgcICQoLDA0ODxAR\n/session' > "$dir/valid-id"
    printf 'theme=dark; SESSION_ID=q-_9Zz0aA1bB2cC3dD4eE5fF; lang=en\n/session/attributes/cart?x=1' > "$dir/among-others"
    printf 'SESSION_ID="AAECAwQFBgcICQoLDA0ODxAR"\n/session/attributes/a%%2Fb' > "$dir/quoted"
    printf 'SESSION_ID=AAECAwQFBgcICQoLDA0ODx+R\n//session//attributes//%%00' > "$dir/bad-character"
    printf 'SESSION_ID=short; SESSION_ID=AAECAwQFBgcICQoLDA0ODxAR\n/session/principal/sessions#frag' > "$dir/twice"
    printf 'SESSION_ID\n/session/attributes/' > "$dir/no-value"
    git status --short Fixtures/fuzz
    exit 0
fi

failed=()
for target in "${targets[@]}"; do
    corpus="$state/corpus/$target"
    artifacts="$state/artifacts/$target"
    log="$state/fuzz-$target.log"
    mkdir -p "$corpus" "$artifacts"
    echo "== $target: ${seconds} s from $(seeds "$target")"
    status=0
    "$bin/$target" "$corpus" "$(seeds "$target")" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 > "$log" 2>&1 || status=$?
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$log" || true
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target FAILED (exit $status); the end of $log:" >&2
        tail -n 40 "$log" >&2
        echo "fuzz: $target: crashing input(s):" >&2
        grep -o "Test unit written to .*" "$log" >&2 || ls -1 "$artifacts" >&2
        echo "fuzz: replay with: $bin/$target <input>" >&2
        failed+=("$target")
    fi
done
echo "== fuzzing took $(( $(date +%s) - start )) s in all"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: failed: ${failed[*]}" >&2
    exit 1
fi
