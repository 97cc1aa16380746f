// Reading and splitting the digits (digits.h).
#include "digits.h"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <vector>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"
#include "hcgrad/core/random.h"

namespace vit {

using namespace hcgrad;

namespace {

constexpr int64_t kMaxImages = 100000;  // the set has 1797: a file far larger is something else (a gzip bomb, say)
constexpr size_t kMaxLineBytes = 4096;  // a line of the set is under 300 bytes

// A CSV cell as a number: the whole cell must be a decimal number (std::stod would take "3abc" as 3).
std::optional<double> parse_cell(const std::string& cell) {
  double value = 0;
  const char* first = cell.data();
  const char* last = first + cell.size();
  auto [end, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || end != last) return std::nullopt;
  return value;
}

// One line of the file: 64 pixels in [0, 16] and a whole label in [0, 9]; appended to pixels and labels.
void parse_line(std::string line, const std::string& where, std::vector<float>& pixels, std::vector<int64_t>& labels) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  std::vector<double> values;
  std::stringstream cells(line);
  for (std::string cell; std::getline(cells, cell, ',');) {
    std::optional<double> value = parse_cell(cell);
    HC_CHECK(value.has_value(), Error, "digits: ", where, ": '", cell.substr(0, 40), "' is not a number");
    values.push_back(*value);
    HC_CHECK(values.size() <= 65, Error, "digits: ", where, ": more than 64 pixels and a label");
  }
  HC_CHECK(values.size() == 65, Error, "digits: ", where, ": expected 64 pixels and a label 0..9, got ", values.size(),
           " values");
  for (int i = 0; i < 64; ++i)
    HC_CHECK(values[i] >= 0 && values[i] <= 16, Error, "digits: ", where, ": pixel ", i, " is ", values[i],
             "; pixels are 0..16");
  const double label = values[64];
  HC_CHECK(label >= 0 && label <= 9 && label == std::floor(label), Error, "digits: ", where, ": the label is ", label,
           "; expected a whole number 0..9");
  for (int i = 0; i < 64; ++i) pixels.push_back(static_cast<float>(values[i] / 16.0));
  labels.push_back(static_cast<int64_t>(label));
}

}  // namespace

Digits load_digits(const std::string& path) {
  HC_CHECK(std::filesystem::exists(path), Error, "digits: no such file ", path,
           "; bash tools/run.sh vit fetches it (Debian's python3-sklearn ships it as "
           "sklearn/datasets/data/digits.csv.gz)");
  std::error_code ec;
  HC_CHECK(std::filesystem::is_regular_file(path, ec), Error, "digits: ", path,
           " is not a regular file (a directory, device or pipe)");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), &gzclose);  // reads plain text too
  HC_CHECK(file != nullptr, Error, "digits: cannot open ", path);
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  char line[kMaxLineBytes];
  int64_t line_number = 0;
  while (gzgets(file.get(), line, sizeof line) != nullptr) {
    ++line_number;
    const std::string where = detail::concat(path, " line ", line_number);
    const size_t length = std::strlen(line);
    HC_CHECK(length + 1 < sizeof line || line[length - 1] == '\n', Error, "digits: ", where, " is longer than ",
             kMaxLineBytes - 2, " bytes; not the digits set");
    HC_CHECK(static_cast<int64_t>(labels.size()) < kMaxImages, Error, "digits: ", path, " holds more than ",
             kMaxImages, " images; not the digits set (1797 images)");
    parse_line(line, where, pixels, labels);
  }
  int error = Z_OK;
  gzerror(file.get(), &error);
  HC_CHECK(error == Z_OK, Error, "digits: ", path, " is truncated or not valid gzip (", gzerror(file.get(), &error),
           ")");
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

double fraction_correct(const hcgrad::Tensor& logits, const hcgrad::Tensor& labels) {
  const std::vector<int64_t> predicted = hcgrad::argmax(logits, 1).to_vector<int64_t>();
  const std::vector<int64_t> truth = labels.to_vector<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i];
  return static_cast<double>(correct) / static_cast<double>(truth.size());
}

}  // namespace vit
