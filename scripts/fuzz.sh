#!/usr/bin/env bash
# Fuzzes ObserveBridge's input decoders and its job spec parser (cargo-fuzz + libFuzzer, the
# crate in fuzz/), each target for a fixed time, and prints per target: runs, execs/s, new
# corpus units and crashes. Exits non-zero when any target crashed (or hung, or ran out of
# memory); the reproducer is in fuzz/artifacts/<target>/ and `cargo fuzz run <target> <file>`
# replays it.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]       default 60
#
# Environment:
#   FUZZ_TARGETS     targets to run, space separated (default: all of `cargo fuzz list`)
#   FUZZ_SANITIZER   none (default: the code under test is safe Rust, where panics and overflow
#                    checks are what find bugs, and ASan only halves the speed) or address
#   FUZZ_TIMEOUT     seconds one input may take before it counts as a hang (default 25)
#
# Builds go to fuzz/target (not the shared target/), with `nice -n 19`. The first build of
# job_spec compiles the whole observebridge crate (connectors, DataFusion) with coverage
# instrumentation: expect tens of minutes on 2 cores; later runs are incremental.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

SECONDS_PER_TARGET="${1:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
TIMEOUT="${FUZZ_TIMEOUT:-25}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
  exit 64
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  nice -n 19 cargo install cargo-fuzz --locked
fi

# cargo-fuzz needs nightly-only flags: the nightly toolchain when rustup has a working one,
# else the stable compiler with RUSTC_BOOTSTRAP=1.
TOOLCHAIN=()
if command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then
  TOOLCHAIN=(+nightly)
  echo "toolchain: $(rustup run nightly rustc --version)" >&2
else
  export RUSTC_BOOTSTRAP=1
  echo "toolchain: $(rustc --version) with RUSTC_BOOTSTRAP=1 (no usable nightly)" >&2
fi

FUZZ_TARGET_DIR=fuzz/target
LOG_DIR="$FUZZ_TARGET_DIR/fuzz-logs"
mkdir -p "$LOG_DIR"
read -r -a TARGETS <<< "${FUZZ_TARGETS:-$(cargo "${TOOLCHAIN[@]}" fuzz list | tr '\n' ' ')}"

# Per-target cargo features: job_spec needs the observebridge crate (src/lib.rs).
features_of() {
  case "$1" in
    job_spec) echo "--features=job_spec" ;;
    *) echo "" ;;
  esac
}

printf '%s\n' "fuzzing ${TARGETS[*]} for ${SECONDS_PER_TARGET}s each (sanitizer: $SANITIZER)" >&2
declare -A RUNS RATE NEW CRASHES STATUS
failed=0
for target in "${TARGETS[@]}"; do
  if [ "$target" = job_spec ] && [ ! -f src/lib.rs ]; then
    STATUS[$target]="skipped (no src/lib.rs: observebridge::job is not a library yet)"
    continue
  fi
  features=$(features_of "$target")
  echo "== $target: building" >&2
  # shellcheck disable=SC2086 # $features is empty or one word
  if ! nice -n 19 cargo "${TOOLCHAIN[@]}" fuzz build -s "$SANITIZER" --codegen-units 16 \
      --target-dir "$FUZZ_TARGET_DIR" $features "$target" > "$LOG_DIR/$target.build.log" 2>&1; then
    tail -n 30 "$LOG_DIR/$target.build.log" >&2
    STATUS[$target]="build failed (see $LOG_DIR/$target.build.log)"
    failed=1
    continue
  fi

  # New inputs go to the first corpus dir (under target/, not committed); the seeds are read.
  work_corpus="$FUZZ_TARGET_DIR/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$work_corpus" "$artifacts" "fuzz/corpus/$target"
  before=$(find "$artifacts" -type f | sort)
  echo "== $target: running ${SECONDS_PER_TARGET}s" >&2
  set +e
  # shellcheck disable=SC2086
  nice -n 19 cargo "${TOOLCHAIN[@]}" fuzz run -s "$SANITIZER" --codegen-units 16 \
      --target-dir "$FUZZ_TARGET_DIR" $features "$target" "$work_corpus" "fuzz/corpus/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -print_final_stats=1 \
      > "$LOG_DIR/$target.log" 2>&1
  rc=$?
  set -e
  log="$LOG_DIR/$target.log"
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
  if [ -z "$runs" ]; then
    # No final stats (the run died): the last status line `#RUNS ... exec/s: N`.
    runs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    rate=$(grep -oE 'exec/s: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+')
  fi
  after=$(find "$artifacts" -type f | sort)
  found=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | grep -cE '/(crash|oom|timeout|leak)-' || true)
  RUNS[$target]=${runs:-?}
  RATE[$target]=${rate:-?}
  NEW[$target]=${new:-?}
  CRASHES[$target]=$found
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    failed=1
    STATUS[$target]="FAILED (exit $rc; log $log)"
    comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed 's/^/   reproducer: /' >&2
    grep -m 5 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | sed 's/^/   /' >&2 || true
  else
    STATUS[$target]=ok
  fi
done

echo
printf '%-12s %12s %10s %10s %8s  %s\n' target runs execs/s new-units crashes result
for target in "${TARGETS[@]}"; do
  printf '%-12s %12s %10s %10s %8s  %s\n' "$target" "${RUNS[$target]:--}" "${RATE[$target]:--}" \
    "${NEW[$target]:--}" "${CRASHES[$target]:--}" "${STATUS[$target]}"
done
exit "$failed"
