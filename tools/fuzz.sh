#!/usr/bin/env bash
# Fuzzes the safetensors reader (tests/fuzz/fuzz_safetensors.cpp) with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer.
#
#   bash tools/fuzz.sh [seconds]     default 60
#
# Needs clang with libFuzzer (Debian: clang); without it, says why and exits 0 ("skipped"). Builds in
# build-fuzz/ and fuzzes a copy of the seed corpus (tests/fuzz/corpus) kept in build-fuzz/corpus, so new
# inputs never land in the repository. Fails on any crash, sanitizer report, leak or slow input; the
# input that did it is saved in build-fuzz/artifacts/ (replay: build-fuzz/tests/fuzz/fuzz_safetensors FILE).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: bash tools/fuzz.sh [seconds]" >&2
  exit 2
fi

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

# RelWithDebInfo: optimised like the real library, with line numbers in sanitizer reports.
CXX=$cxx cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHCGRAD_BUILD_FUZZERS=ON -DHCGRAD_CUDA=OFF \
  -DHCGRAD_BUILD_TESTS=OFF -DHCGRAD_BUILD_EXAMPLES=OFF -DHCGRAD_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)" --target fuzz_safetensors

mkdir -p build-fuzz/corpus build-fuzz/artifacts
cp tests/fuzz/corpus/* build-fuzz/corpus/
# The words of the format, so mutations reach past the JSON parser more often.
cat >build-fuzz/safetensors.dict <<'DICT'
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"hcgrad_checksum\""
"\"F32\""
"\"F64\""
"\"I64\""
"\"BOOL\""
"\"F16\""
"fnv1a64:"
"18446744073709551615"
"9223372036854775807"
DICT

# UBSan in this build reports and goes on by default; halt_on_error makes every report a failure.
echo "fuzz: running fuzz_safetensors for ${seconds}s"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  build-fuzz/tests/fuzz/fuzz_safetensors build-fuzz/corpus -dict=build-fuzz/safetensors.dict \
  -max_total_time="$seconds" -timeout=10 -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/
echo "fuzz: no crash in ${seconds}s (corpus now $(ls build-fuzz/corpus | wc -l) inputs)"
