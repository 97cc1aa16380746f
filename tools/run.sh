#!/usr/bin/env bash
# hcgrad's entry point: installs the Debian packages the build needs (when missing), configures and
# builds, then runs one job.
#
#   bash tools/run.sh train [flags]  the main job: train the tiny byte-level GPT on Debian's fortunes
#                                    (tinylm train; any tinylm train flag may follow)
#   bash tools/run.sh test           the whole test suite (CTest over the doctest cases and CLI checks)
#   bash tools/run.sh sanitize       the suite again, built with AddressSanitizer + UndefinedBehaviorSanitizer
#   bash tools/run.sh fuzz [seconds] each libFuzzer target (checkpoint loader, tinylm's metadata reader and
#                                    command line, the digits loader, refcheck's case reader) for `seconds`
#                                    (default 60; needs clang)
#   bash tools/run.sh compare [flags] tinylm compare: every connection for several seeds, a summary and PNG plots
#                                    (installs gnuplot-nox; any tinylm compare flag may follow)
#   bash tools/run.sh vit [flags]    vit_digits: a small ViT with and without mHC on the 8x8 digits (fetches
#                                    python3-sklearn's digits.csv.gz into data/)
#   bash tools/run.sh cnn [flags]    cnn_digits: a small CNN whose residual blocks join through channel-first
#                                    hyper-connections, on the same digits (--connection residual for the plain one)
#   bash tools/run.sh install [prefix] the library, its headers and its CMake package into prefix (default
#                                    ~/.local), for find_package(hcgrad) in your own project
#   bash tools/run.sh demo           the MLP demo: tensors, autograd and SGD on a spiral
#   bash tools/run.sh bench          the GEMM benchmark (hcgrad matmul against plain Eigen)
#   bash tools/run.sh gpu-test       only the GPU suite (each case skips, saying why, without a GPU)
#   bash tools/run.sh gpu-bench [steps] each GPU kernel family's µs and GB/s (bench_gpu_kernels), then tinylm's
#                                    GPU benchmark config (6 layers, d 384, 6 heads, ctx 256, batch 64) on cuda:0:
#                                    tokens/s
#
# The CUDA backend is built whenever nvcc is found (CMake option HCGRAD_CUDA); the sanitizer build is CPU only.
# Builds go to build/ (Release: -O3 and this machine's vector ISA) and build-asan/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(cmake make g++ libeigen3-dev libtbb-dev libdnnl-dev ocl-icd-opencl-dev doctest-dev nlohmann-json3-dev libcli11-dev zlib1g-dev fortunes libopenmpi-dev openmpi-bin)
jobs=$(nproc 2>/dev/null || echo 2)

die() {
  echo "hcgrad: $*" >&2
  exit 1
}

# ensure_packages [extra packages...]: the build's packages, and those a job needs besides (gnuplot for plots).
ensure_packages() {
  command -v dpkg-query >/dev/null || die "this set-up needs a Debian-like system (dpkg, apt-get); install these \
packages or their equivalents yourself, then run cmake as in README.md: ${packages[*]}"
  local missing=() p
  for p in "${packages[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "missing packages (${missing[*]}) and no sudo to install them; run as root: \
apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  echo "hcgrad: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
    "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" ||
      die "could not install ${missing[*]} with apt-get; install them and rerun"
  fi
}

# build DIR [cmake options...] [-- targets...]: configure DIR, then build the targets (default: all).
build() {
  local dir=$1 options=() targets=()
  shift
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    options+=("$1")
    shift
  done
  [ $# -gt 0 ] && shift  # the "--"
  [ $# -gt 0 ] && targets=(--target "$@")
  cmake -S . -B "$dir" "${options[@]}" >/dev/null || die "cmake could not configure $dir (see the messages above)"
  cmake --build "$dir" -j "$jobs" "${targets[@]}" || die "the build in $dir failed (see the messages above)"
}

# The Release build in build/ that every job but sanitize runs from; arguments name the targets (default all).
release_build() {
  ensure_packages
  build build -DCMAKE_BUILD_TYPE=Release -- "$@"
}

# data/digits.csv.gz: the 8x8 handwritten digits, the one file of Debian's python3-sklearn the ViT example reads
# (copied when the package is installed, else unpacked from the downloaded package; nothing else is installed).
fetch_digits() {
  local target=data/digits.csv.gz member=usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz
  [ -s "$target" ] && return 0
  mkdir -p data
  if [ -s "/$member" ]; then
    cp "/$member" "$target"
    return 0
  fi
  command -v apt-get >/dev/null || die "no apt-get to fetch python3-sklearn's digits.csv.gz; put the file at $target"
  local tmp
  tmp=$(mktemp -d)
  echo "hcgrad: fetching digits.csv.gz from Debian's python3-sklearn package"
  if ! (cd "$tmp" && apt-get download python3-sklearn >/dev/null 2>&1); then
    local sudo=()
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo=(sudo)
    "${sudo[@]}" apt-get update >/dev/null && (cd "$tmp" && apt-get download python3-sklearn >/dev/null 2>&1) ||
      { rm -rf "$tmp"; die "could not download python3-sklearn (for its digits.csv.gz); put the file at $target"; }
  fi
  dpkg-deb --fsys-tarfile "$tmp"/python3-sklearn_*.deb | tar -xO "./$member" >"$target.tmp" && mv "$target.tmp" "$target"
  rm -rf "$tmp" "$target.tmp"
  [ -s "$target" ] || die "python3-sklearn's package did not hold $member"
}

job=${1:-}
case "$job" in
  train)
    release_build tinylm
    build/examples/tinylm train "${@:2}"
    ;;
  compare)
    ensure_packages gnuplot-nox  # the PNG plots
    release_build tinylm
    build/examples/tinylm compare "${@:2}"
    ;;
  vit)
    release_build vit_digits
    fetch_digits
    build/examples/vit_digits --data data/digits.csv.gz "${@:2}"
    ;;
  cnn)
    release_build cnn_digits
    fetch_digits
    build/examples/cnn_digits --data data/digits.csv.gz "${@:2}"
    ;;
  install)
    release_build hcgrad
    cmake --install build --prefix "${2:-$HOME/.local}"
    ;;
  demo)
    release_build mlp_demo
    build/examples/mlp_demo "${@:2}"
    ;;
  test)
    release_build
    # The ViT accuracy test needs the digits; without them (offline) that one test is skipped, saying why.
    (fetch_digits) || echo "hcgrad: could not fetch data/digits.csv.gz; the vit_digits accuracy test will be skipped"
    ctest --test-dir build --output-on-failure -j "$jobs"
    ;;
  sanitize)
    ensure_packages
    # -O1 keeps the sanitized build quick to compile and the suite quick to run; -g1 (line tables only) still
    # gives every frame of a sanitizer report its file and line, and compiles about 30% faster than -g.
    build build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DHCGRAD_SANITIZE=ON \
      -DHCGRAD_BUILD_BENCH=OFF -DHCGRAD_CUDA=OFF
    # allocator_may_return_null: an allocation too large for ASan throws std::bad_alloc as it would without ASan,
    # so the out-of-memory tests see hcgrad's own handling.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir build-asan --output-on-failure -j "$jobs"
    build-asan/examples/mlp_demo 300
    ;;
  fuzz)
    ensure_packages
    bash tools/fuzz.sh "${@:2}"
    ;;
  bench)
    release_build
    bash bench/matmul.sh build "${@:2}"
    ;;
  gpu-test)
    release_build hcgrad_gpu_tests
    ctest --test-dir build --output-on-failure -R "^gpu"
    ;;
  gpu-bench)
    # Each kernel family's time and bandwidth, then the model: hcgrad, then PyTorch eager on the same model and
    # GPU (when tools/.venv has torch and hyper-connections).
    release_build tinylm bench_gpu_kernels
    build/bench/bench_gpu_kernels
    config=(--layers 6 --dim 384 --heads 6 --ctx 256 --batch 64)
    build/examples/tinylm train --device cuda "${config[@]}" --steps "${2:-300}" --eval-every 100000 \
      --sample-tokens 0 --out "runs/gpu-bench-$(date +%Y%m%d-%H%M%S)"
    if [ -x tools/.venv/bin/python ]; then
      tools/.venv/bin/python tools/torch_peer.py --device cuda "${config[@]}"
    else
      echo "hcgrad: no tools/.venv (see tools/requirements-fixtures.txt): the PyTorch peer was not run"
    fi
    ;;
  *)
    echo "usage: bash tools/run.sh train|test|sanitize|fuzz|compare|vit|install|demo|bench|gpu-test|gpu-bench" >&2
    exit 2
    ;;
esac
