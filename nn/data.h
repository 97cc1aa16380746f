// Text data for the tiny language model: bytes in, [B, T] batches of token ids out.
//
//   std::string text = nn::default_corpus();                 // or nn::read_text_file(path)
//   auto data = nn::TextDataset::from_text(text, 0.1);       // 90% train, the last 10% validation
//   data.check_fits(context);                                 // clear error if the text is too short
//   nn::Batch b = nn::sample_batch(data.train(), 32, 128, gen);  // b.inputs, b.targets: int64 [32, 128]
//
// The tokenizer is byte-level (vocab 256, token = byte), as in the earliest char-level GPT demos: no
// vocabulary file, nothing unknown, and any text, UTF-8 or not, round-trips exactly. The model just has
// to learn that some characters take several tokens.
//
// Training batches are windows at random starts drawn from a counter-based Generator, so a run resumed
// from a checkpoint (which stores the generator's seed and offset) sees the very batches it would have
// seen. Evaluation batches are fixed, so validation losses are comparable from one evaluation to the next.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hcgrad/core/random.h"
#include "hcgrad/core/tensor.h"

namespace hcgrad::nn {

// Byte-level tokenizer: token id = byte value.
struct ByteTokenizer {
  static constexpr int64_t vocab_size = 256;
  // One token per byte of the text (a UTF-8 "é" is two tokens).
  static std::vector<uint8_t> encode(std::string_view text);
  // The bytes back; throws IndexError for an id outside [0, 256). The result may be invalid UTF-8
  // when a sampled sequence stops in the middle of a multi-byte character.
  static std::string decode(const std::vector<int64_t>& tokens);
};

// The whole file, as bytes. Throws a clear Error when it is missing, not a regular file (a directory, a
// device such as /dev/zero, a pipe: streams that may never end), unreadable, empty, or larger than
// `max_bytes` (the message says how large it is and the limit).
inline constexpr uint64_t kDefaultMaxTextBytes = uint64_t(1) << 30;  // 1 GiB
std::string read_text_file(const std::string& path, uint64_t max_bytes = kDefaultMaxTextBytes);

// Where Debian's `fortunes` package puts its files.
inline constexpr const char* kFortunesDirectory = "/usr/share/games/fortunes";

// The default corpus: the fortunes of 28 files of Debian's `fortunes` package (chosen to suit a public demo;
// data.cpp lists them), split at their "%" lines, empty ones dropped, shuffled with a fixed seed so the
// validation tail mixes every file, and joined with a blank line between fortunes. The same bytes on every
// run. Missing files are skipped; with none found it throws an Error that says to install the package or
// to pass a text file with --data FILE. `directory` is there for tests.
std::string default_corpus(const std::string& directory = kFortunesDirectory);
// One line for logs, e.g. "Debian fortunes (28 files, 9794 fortunes, 2.2 MB)".
std::string default_corpus_description(const std::string& directory = kFortunesDirectory);
// Both at once, reading the files once (what a training run wants).
struct Corpus {
  std::string text;
  std::string description;
};
Corpus load_default_corpus(const std::string& directory = kFortunesDirectory);

// The tokens of a text, split into a training part and a validation tail.
class TextDataset {
 public:
  // The last `val_fraction` of the tokens, val_fraction in (0, 1), is the validation split (as in nanoGPT:
  // a contiguous tail, so no validation window overlaps a training window except at the one boundary).
  static TextDataset from_text(std::string_view text, double val_fraction = 0.1);

  const std::vector<uint8_t>& train() const { return train_; }
  const std::vector<uint8_t>& val() const { return val_; }

  // Both splits must hold a window of `context` inputs plus its one-token-later target: context + 1 tokens.
  // Otherwise throws, e.g. "corpus too short: the validation split has 40 bytes, a context of 128 needs at
  // least 129 ...", with what to change.
  void check_fits(int64_t context) const;

 private:
  TextDataset(std::vector<uint8_t> train, std::vector<uint8_t> val) : train_(std::move(train)), val_(std::move(val)) {}
  std::vector<uint8_t> train_;
  std::vector<uint8_t> val_;
};

// A batch for next-token prediction: targets[b, t] = inputs[b, t + 1] for t < T - 1, and targets[b, T-1] is
// the token after the window. Both int64 [B, T].
struct Batch {
  Tensor inputs;
  Tensor targets;
};

// B windows of T tokens at starts drawn uniformly from [0, tokens.size() - T - 1]. Takes B counters from
// `gen` (start b comes from counter first + b), so the generator's (seed, offset) decides the batch.
Batch sample_batch(const std::vector<uint8_t>& tokens, int64_t batch, int64_t context, Generator& gen);

// `count` batches of B windows whose count * B starts are evenly spaced from 0 to tokens.size() - T - 1,
// so together they cover the split from its first to its last window. No randomness: the same batches on
// every call.
std::vector<Batch> eval_batches(const std::vector<uint8_t>& tokens, int64_t batch, int64_t context, int64_t count);

}  // namespace hcgrad::nn
