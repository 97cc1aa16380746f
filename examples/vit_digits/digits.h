// The 8x8 handwritten digits (Alpaydin & Kaynak 1998, UCI): 1797 images, pixels 0..16, ten classes. The file is
// scikit-learn's digits.csv.gz (one image per line: 64 pixels then the label), which Debian ships in
// python3-sklearn; `bash tools/run.sh vit` extracts just that file into data/.
#pragma once

#include <string>

#include <vector>

#include "hcgrad/core/random.h"
#include "hcgrad/core/tensor.h"

namespace vit {

struct Digits {
  hcgrad::Tensor images;  // float32 [N, 1, 8, 8], pixels scaled to [0, 1]
  hcgrad::Tensor labels;  // int64 [N]
  int64_t size() const { return labels.numel(); }
};

// Reads the CSV (gzip-compressed or plain); a missing, short or malformed file is refused with a message.
Digits load_digits(const std::string& path);

// A seeded shuffle of the images, then the first `test_fraction` of them for testing and the rest for training.
struct DigitsSplit {
  Digits train, test;
};
DigitsSplit split_digits(const Digits& all, double test_fraction, uint64_t seed);

// 0..n-1 in a random order drawn from gen (for the split and each epoch's batches).
std::vector<int64_t> shuffled_indices(int64_t n, hcgrad::Generator& gen);
// The images and labels of these rows, in this order.
Digits take(const Digits& all, const std::vector<int64_t>& rows);

// Data augmentation: each image moved by a random (dy, dx) in {-1, 0, 1}^2, the uncovered border zero (blank
// paper). The digits were centred by the original preprocessing, so a pixel's shift keeps them readable.
hcgrad::Tensor shift_images(const hcgrad::Tensor& images, hcgrad::Generator& gen);

// The fraction of rows whose largest logit is at the label: logits [N, classes], labels int64 [N].
double fraction_correct(const hcgrad::Tensor& logits, const hcgrad::Tensor& labels);

}  // namespace vit
