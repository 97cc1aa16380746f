// Reading and splitting the digits (digits.h).
#include "digits.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <vector>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"
#include "hcgrad/core/random.h"

namespace vit {

using namespace hcgrad;

Digits load_digits(const std::string& path) {
  HC_CHECK(std::filesystem::exists(path), Error, "digits: no such file ", path,
           "; bash tools/run.sh vit fetches it (Debian's python3-sklearn ships it as "
           "sklearn/datasets/data/digits.csv.gz)");
  gzFile file = gzopen(path.c_str(), "rb");  // reads plain text too
  HC_CHECK(file != nullptr, Error, "digits: cannot open ", path);
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  char line[1024];
  int64_t line_number = 0;
  while (gzgets(file, line, sizeof line) != nullptr) {
    ++line_number;
    std::stringstream cells(line);
    std::vector<double> values;
    for (std::string cell; std::getline(cells, cell, ',');) {
      try {
        values.push_back(std::stod(cell));
      } catch (const std::exception&) {
        gzclose(file);
        throw Error(detail::concat("digits: ", path, " line ", line_number, ": '", cell, "' is not a number"));
      }
    }
    if (values.size() != 65 || values[64] < 0 || values[64] > 9) {
      gzclose(file);
      throw Error(detail::concat("digits: ", path, " line ", line_number, ": expected 64 pixels and a label 0..9, got ",
                                 values.size(), " values"));
    }
    for (int i = 0; i < 64; ++i) pixels.push_back(static_cast<float>(values[i] / 16.0));
    labels.push_back(static_cast<int64_t>(values[64]));
  }
  gzclose(file);
  const int64_t n = static_cast<int64_t>(labels.size());
  HC_CHECK(n >= 10, Error, "digits: ", path, " holds ", n, " images; expected the 1797 of the digits set");
  return {from_vector(pixels, {n, 1, 8, 8}), from_vector(labels, {n})};
}

std::vector<int64_t> shuffled_indices(int64_t n, Generator& gen) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  shuffle_by_counter(order, gen.reserve(static_cast<uint64_t>(n)), gen.seed());
  return order;
}

Digits take(const Digits& all, const std::vector<int64_t>& rows) {
  const Tensor index = from_vector(rows, {static_cast<int64_t>(rows.size())});
  return {index_select(all.images, 0, index), index_select(all.labels, 0, index)};
}

Tensor shift_images(const Tensor& images, Generator& gen) {
  HC_CHECK(images.dim() == 4 && images.dtype() == DType::Float32, ShapeError,
           "shift_images: expected float32 images [N, C, H, W], got ", images.dtype(), " ", images.shape());
  const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  const std::vector<float> in = images.to_vector<float>();
  std::vector<float> out(in.size(), 0.0f);
  const uint64_t first = gen.reserve(static_cast<uint64_t>(2 * N));
  auto draw_shift = [&](int64_t k) {  // -1, 0 or 1
    return std::min<int64_t>(static_cast<int64_t>(uniform_from_counter(first + k, gen.seed()) * 3), 2) - 1;
  };
  for (int64_t n = 0; n < N; ++n) {
    const int64_t dy = draw_shift(2 * n), dx = draw_shift(2 * n + 1);
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const int64_t from_y = y - dy, from_x = x - dx;
          if (from_y < 0 || from_y >= H || from_x < 0 || from_x >= W) continue;
          out[((n * C + c) * H + y) * W + x] = in[((n * C + c) * H + from_y) * W + from_x];
        }
  }
  return from_vector(out, images.shape());
}

DigitsSplit split_digits(const Digits& all, double test_fraction, uint64_t seed) {
  const int64_t n = all.size(), test = static_cast<int64_t>(static_cast<double>(n) * test_fraction);
  HC_CHECK(test > 0 && test < n, Error, "digits: a test fraction of ", test_fraction, " leaves no train or no test images");
  Generator gen(seed);
  const std::vector<int64_t> order = shuffled_indices(n, gen);
  return {take(all, std::vector<int64_t>(order.begin() + test, order.end())),
          take(all, std::vector<int64_t>(order.begin(), order.begin() + test))};
}

}  // namespace vit
