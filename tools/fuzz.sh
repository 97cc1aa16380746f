#!/usr/bin/env bash
# Fuzzes every parser of outside input with libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer:
#   safetensors     the safetensors reader (nn/checkpoint.cpp)
#   run_metadata    tinylm's checkpoint metadata reader (examples/tinylm/run_checkpoint.cpp, trainer.cpp)
#   tinylm_cli      tinylm's command line (examples/tinylm/cli.cpp)
#   digits          vit_digits' data loader (examples/vit_digits/digits.cpp)
#   refcheck_cases  refcheck's reference-case reader (tools/refcheck/cases.cpp)
#
#   bash tools/fuzz.sh [seconds] [target...]     each target (default: all) for `seconds` (default 60)
#
# Needs clang with libFuzzer (Debian: clang); without it, says why and exits 0 ("skipped"). Builds in
# build-fuzz/ and fuzzes copies of the seed corpora (tests/fuzz/corpus/<target>/) kept in build-fuzz/corpus/,
# so new inputs never land in the repository; tests/fuzz/<target>.dict, when there, lists the input's words.
# Fails on any crash, sanitizer report, leak, uncaught exception or slow input; the input that did it is saved
# in build-fuzz/artifacts/ (replay: build-fuzz/tests/fuzz/fuzz_<target> FILE).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

all_targets=(safetensors run_metadata tinylm_cli digits refcheck_cases)
seconds=${1:-60}
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: bash tools/fuzz.sh [seconds] [target...]   (targets: ${all_targets[*]})" >&2
  exit 2
fi
targets=("${@:2}")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
  [ -d "tests/fuzz/corpus/$target" ] || { echo "fuzz: unknown target '$target' (targets: ${all_targets[*]})" >&2; exit 2; }
done

# clang++ is called clang++-14 (or another version) where no default is installed.
cxx=""
for candidate in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
  if command -v "$candidate" >/dev/null; then
    cxx=$(command -v "$candidate")
    break
  fi
done
if [ -z "$cxx" ]; then
  echo "fuzz: skipped: no clang++ on PATH, and libFuzzer comes with clang (Debian: apt-get install clang)"
  exit 0
fi
# Some installations lack the libFuzzer runtime; check with a one-line fuzzer before configuring.
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' >"$probe_dir/probe.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe_dir/probe.cpp" -o "$probe_dir/probe" 2>/dev/null; then
  echo "fuzz: skipped: $cxx cannot link -fsanitize=fuzzer (is its compiler-rt/libFuzzer runtime installed?)"
  exit 0
fi

# RelWithDebInfo at -O1 -g1: line numbers in sanitizer reports (line tables, not full debug info), and a build
# that is quicker than -O2 -g (CI pays for it on every run). The examples are configured (tinylm's and vit_digits' parsers are fuzzed) but only the
# fuzzers are built.
CXX=$cxx cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DHCGRAD_BUILD_FUZZERS=ON -DHCGRAD_CUDA=OFF \
  -DHCGRAD_BUILD_TESTS=OFF -DHCGRAD_BUILD_EXAMPLES=ON -DHCGRAD_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]/#/fuzz_}"

mkdir -p build-fuzz/artifacts
for target in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$target"
  cp "tests/fuzz/corpus/$target"/* "build-fuzz/corpus/$target/"
  dict=()
  [ -f "tests/fuzz/$target.dict" ] && dict=(-dict="tests/fuzz/$target.dict")
  echo "fuzz: running fuzz_$target for ${seconds}s"
  # UBSan in this build reports and goes on by default; halt_on_error makes every report a failure.
  # allocator_may_return_null: an allocation too large for ASan throws std::bad_alloc, as it would without
  # ASan, so hcgrad's own out-of-memory handling is what gets fuzzed.
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    "build-fuzz/tests/fuzz/fuzz_$target" "build-fuzz/corpus/$target" "${dict[@]}" -max_total_time="$seconds" \
    -timeout=10 -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/ 2>&1 | grep -v "^#[0-9]" || {
    echo "fuzz: fuzz_$target failed (see above; the input is in build-fuzz/artifacts/)"
    exit 1
  }
  echo "fuzz: fuzz_$target: no crash in ${seconds}s (corpus now $(ls "build-fuzz/corpus/$target" | wc -l) inputs)"
done
