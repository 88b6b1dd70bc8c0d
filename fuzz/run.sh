#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the other.
#
#   fuzz/run.sh SECONDS [TARGET...]      e.g. fuzz/run.sh 60   (CI), fuzz/run.sh 600 model
#
# Installs cargo-fuzz if it is missing. Uses the nightly toolchain when there is one, else the
# default toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes a few -Z flags). No sanitizer:
# the code fuzzed is safe Rust (`tinyvi` forbids `unsafe`), so panics, aborts, stack overflows,
# timeouts and out-of-memory are what there is to find, and libFuzzer catches all of them.
# Environment: FUZZ_FEATURES (e.g. `infer`), FUZZ_JOBS (default 1, parallel fuzzing processes).
#
# Prints each target's executions; exits non-zero if any target crashes, hangs or fails to run.
# A crashing input is left in fuzz/artifacts/TARGET/ and the command to replay it is printed.
set -euo pipefail

usage() { echo "usage: $0 SECONDS [TARGET...]" >&2; exit 2; }
[[ $# -ge 1 && $1 =~ ^[1-9][0-9]*$ ]] || usage
seconds=$1
shift
cd "$(dirname "$0")"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(model idx)

if cargo +nightly --version >/dev/null 2>&1; then
    cargo=(cargo +nightly)
else
    echo "fuzz: no nightly toolchain, using the default one with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

features=()
[[ -n ${FUZZ_FEATURES:-} ]] && features=(--features "$FUZZ_FEATURES")
# Debug assertions on: an integer overflow is a bug worth a crash report here.
build=(fuzz build -a -s none "${features[@]}")
"${cargo[@]}" "${build[@]}"

# Inputs may grow to the size of the largest seed (the 355 KB LeNet) for `model`.
jobs=()
if [[ ${FUZZ_JOBS:-1} -gt 1 ]]; then
    jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi
declare -A max_len=([model]=360000 [idx]=4096)
mkdir -p logs
status=0
total=0
for t in "${targets[@]}"; do
    [[ -d seeds/$t ]] || { echo "fuzz: unknown target $t (no seeds/$t)" >&2; exit 2; }
    mkdir -p "corpus/$t" "artifacts/$t"
    log=logs/$t.log
    touch "$log.start"
    rc=0
    "${cargo[@]}" fuzz run -a -s none "${features[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -max_len="${max_len[$t]:-4096}" -timeout=20 \
        "${jobs[@]}" -print_final_stats=1 >"$log" 2>&1 || rc=$?
    # With -jobs each job's statistics are in its fuzz-N.log (which the parent also echoes).
    stats=("$log")
    [[ ${#jobs[@]} -gt 0 ]] && stats=(fuzz-[0-9]*.log)
    execs=$(cat "${stats[@]}" 2>/dev/null |
        awk '/^stat::number_of_executed_units:/ { n += $2 } END { print n + 0 }')
    rm -f fuzz-[0-9]*.log
    total=$((total + execs))
    if [[ $rc -ne 0 || $execs -eq 0 ]]; then
        status=1
        echo "fuzz: $t FAILED (exit $rc) after $execs executions; last lines of fuzz/$log:"
        grep -E -A1 "panicked|ERROR|SUMMARY|Test unit written|timeout|out-of-memory" "$log" | tail -n 15 || true
        tail -n 5 "$log"
        find "artifacts/$t" -type f -newer "$log.start" | while read -r a; do
            echo "fuzz: replay with: cd fuzz && ${cargo[*]} fuzz run -a -s none $t $a"
        done
    else
        echo "fuzz: $t: $execs executions in $seconds s, no crash"
    fi
    rm -f "$log.start"
done
echo "fuzz: total $total executions"
exit $status
