#!/usr/bin/env bash
# examples/my_project built as a user would, outside hcgrad's build:
#   my_project.sh install <hcgrad build dir> <work dir>
#       installs hcgrad into <work dir>/prefix, then configures the project with find_package(hcgrad)
#   my_project.sh subdirectory <work dir>
#       configures the project with add_subdirectory(hcgrad) and no build type of its own (CPU only: the
#       install case already links the CUDA libraries)
# Then builds it, runs taste and hyper_connections (each fails on a wrong result), and checks that hcgrad's
# own flags (-march=native, warnings) did not reach the project's compile lines.
set -euo pipefail
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=$1
fail() {
  echo "my_project ($mode): $*" >&2
  exit 1
}

case "$mode" in
  install)
    hcgrad_build=$2 work=$3
    rm -rf "$work" && mkdir -p "$work"
    cmake --install "$hcgrad_build" --prefix "$work/prefix" >"$work/install.log" || fail "cmake --install failed"
    test -f "$work/prefix/include/hcgrad/hcgrad.h" || fail "no include/hcgrad/hcgrad.h in the installed tree"
    test -f "$work/prefix/lib/cmake/hcgrad/hcgradConfig.cmake" || fail "no CMake package in the installed tree"
    # Only the public headers: the kernels' private ones stay behind.
    test ! -e "$work/prefix/include/hcgrad/core/cpu" || fail "core/cpu/ (private kernel headers) was installed"
    # The umbrella header includes no third-party header (Eigen stays behind nn/diagnostics.h).
    echo '#include <hcgrad/hcgrad.h>' >"$work/umbrella.cpp"
    ${CXX:-c++} -std=c++20 -I"$work/prefix/include" -M "$work/umbrella.cpp" >"$work/umbrella.deps" ||
      fail "<hcgrad/hcgrad.h> needs more than the installed include folder (a third-party header?)"
    if grep -qi 'eigen\|tbb\|nlohmann\|cuda_runtime' "$work/umbrella.deps"; then
      fail "<hcgrad/hcgrad.h> pulls in a third-party header: $(grep -oi '[^ ]*\(eigen\|tbb\|nlohmann\|cuda_runtime\)[^ ]*' "$work/umbrella.deps" | head -3)"
    fi
    configure=(-DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release)
    ;;
  subdirectory)
    work=$2
    rm -rf "$work" && mkdir -p "$work"
    configure=(-DHCGRAD_SOURCE_DIR="$source_dir" -DHCGRAD_CUDA=OFF)
    ;;
  *) fail "usage: my_project.sh install <hcgrad build> <work dir> | subdirectory <work dir>" ;;
esac

# A user's copy of the project, outside the repository's tree.
cp -r "$source_dir/examples/my_project" "$work/my_project"
cmake -S "$work/my_project" -B "$work/build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "${configure[@]}" \
  >"$work/configure.log" || { cat "$work/configure.log"; fail "configure failed"; }
cmake --build "$work/build" -j "$(nproc)" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; fail "build failed"; }

"$work/build/taste" || fail "taste failed"
"$work/build/hyper_connections" || fail "hyper_connections failed"

# hcgrad's private flags stay private: the project's own files compile with the project's flags only.
taste_line=$(grep '"command"' "$work/build/compile_commands.json" | grep 'taste\.cpp' || true)
[ -n "$taste_line" ] || fail "taste.cpp not in compile_commands.json"
for flag in -march=native -Wall -fno-tree-slp-vectorize; do
  case "$taste_line" in *"$flag"*) fail "hcgrad's private flag $flag reached the project: $taste_line" ;; esac
done
if [ "$mode" = subdirectory ]; then
  cache="$work/build/CMakeCache.txt"
  grep -q '^CMAKE_BUILD_TYPE:STRING=$' "$cache" || fail "the parent's empty build type was changed: $(grep CMAKE_BUILD_TYPE: "$cache")"
  grep -q '^HCGRAD_BUILD_TESTS:BOOL=OFF' "$cache" || fail "hcgrad's tests are on inside a parent project"
  test ! -e "$work/build/hcgrad/tools" || fail "hcgrad's tools were added to a parent project"
fi
echo "my_project ($mode): built and ran taste and hyper_connections"
