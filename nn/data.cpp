// Text data: the byte tokenizer, file reading, the fortunes corpus, the train/validation split, batches.
#include "hcgrad/nn/data.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <sstream>
#include <utility>

#include "hcgrad/core/error.h"

namespace hcgrad::nn {

namespace fs = std::filesystem;

// ---- tokenizer ----

std::vector<uint8_t> ByteTokenizer::encode(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), reinterpret_cast<const uint8_t*>(text.data()) + text.size()};
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& tokens) {
  std::string text;
  text.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    HC_CHECK(tokens[i] >= 0 && tokens[i] < vocab_size, IndexError, "ByteTokenizer::decode: token ", tokens[i],
             " at position ", i, " is outside the byte vocabulary [0, ", vocab_size, ")");
    text.push_back(static_cast<char>(static_cast<uint8_t>(tokens[i])));
  }
  return text;
}

// ---- files ----

std::string read_text_file(const std::string& path, uint64_t max_bytes) {
  HC_CHECK(!path.empty(), Error, "read_text_file: the file name is empty");
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);  // follows links
  HC_CHECK(fs::exists(status), Error, "read_text_file: no such file '", path, "'");
  HC_CHECK(!fs::is_directory(status), Error, "read_text_file: '", path, "' is a directory, not a text file");
  HC_CHECK(fs::is_regular_file(status), Error, "read_text_file: '", path,
           "' is not a regular file (a device, pipe or socket may never end); save the text to a file first");
  const uintmax_t size = fs::file_size(path, ec);
  HC_CHECK(!ec, Error, "read_text_file: cannot read the size of '", path, "': ", ec.message());
  HC_CHECK(size <= max_bytes, Error, "read_text_file: '", path, "' is ", size, " bytes, more than the limit of ",
           max_bytes, " bytes; raise the limit if this text is meant");
  std::ifstream in(path, std::ios::binary);
  HC_CHECK(in, Error, "read_text_file: cannot open '", path, "' for reading (check its permissions)");
  // In chunks, and never more than one chunk past the limit: a file that grows while it is read (or a
  // /proc file, whose size reads as 0) is refused at the limit, not followed.
  std::string text;
  text.reserve(static_cast<size_t>(size));
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, static_cast<size_t>(in.gcount()));
    HC_CHECK(text.size() <= max_bytes, Error, "read_text_file: '", path, "' grew past the limit of ", max_bytes,
             " bytes while it was read");
  }
  HC_CHECK(!in.bad(), Error, "read_text_file: error while reading '", path, "'");
  HC_CHECK(!text.empty(), Error, "read_text_file: '", path, "' is empty; a language model needs some text");
  return text;
}

// ---- the fortunes corpus ----

namespace {

// The files of Debian's `fortunes` package that suit a public demo. Left out on purpose: men-women, ethnic,
// drugs, politics, art, zippy (topics and humour unsuited to a public demo), ascii-art (pictures, not prose),
// knghtbrd, perl, debian, news, disclaimer, translate-me (in-jokes, boilerplate, notes for translators).
constexpr std::array<const char*, 28> kFortuneFiles = {
    "fortunes", "wisdom", "literature", "science", "people", "humorists", "education", "food", "kids",
    "pets", "computers", "linux", "platitudes", "riddles", "songs-poems", "work", "tao", "goedel", "magic",
    "paradoxum", "definitions", "startrek", "sports", "medicine", "law", "miscellaneous", "cookie", "love"};

// Any fixed number: it only has to stay the same so that the corpus does.
constexpr uint64_t kShuffleSeed = 0x666f7274756e6573;  // "fortunes" in ASCII

struct FortuneCorpus {
  std::string text;
  int64_t files = 0;
  int64_t fortunes = 0;
};

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

// A fortune file is fortunes separated by lines holding only "%". Returns them without their final newline.
void append_fortunes(std::string_view file_text, std::vector<std::string>& out) {
  std::string current;
  auto flush = [&] {
    while (!current.empty() && current.back() == '\n') current.pop_back();
    if (!is_blank(current)) out.push_back(std::move(current));
    current.clear();
  };
  size_t pos = 0;
  while (pos < file_text.size()) {
    size_t end = file_text.find('\n', pos);
    size_t next = end == std::string_view::npos ? file_text.size() : end + 1;
    std::string_view line = file_text.substr(pos, next - pos);  // with its '\n', if any
    if (line == "%\n" || line == "%") flush();
    else current.append(line);
    pos = next;
  }
  flush();
}

std::string missing_package_message(const std::string& directory, const std::string& what) {
  return detail::concat("default_corpus: ", what, ". The default corpus is the text of Debian's `fortunes` package, "
                        "expected in ", directory, ": install it with `apt-get install fortunes` (tools/run.sh "
                        "does), or train on a text file of your own with --data FILE");
}

FortuneCorpus load_fortunes(const std::string& directory) {
  std::error_code ec;
  HC_CHECK(fs::is_directory(directory, ec), Error, missing_package_message(directory, "no such directory"));
  FortuneCorpus corpus;
  std::vector<std::string> fortunes;
  for (const char* name : kFortuneFiles) {
    fs::path file = fs::path(directory) / name;
    if (!fs::is_regular_file(file, ec) || fs::file_size(file, ec) == 0) continue;  // skip what is not there
    append_fortunes(read_text_file(file.string()), fortunes);
    ++corpus.files;
  }
  HC_CHECK(!fortunes.empty(), Error, missing_package_message(directory, "none of its fortune files were found"));
  shuffle_by_counter(fortunes, 1, kShuffleSeed);  // counters 1..n-1: the same bytes on every machine
  corpus.fortunes = static_cast<int64_t>(fortunes.size());
  for (const std::string& fortune : fortunes) {
    corpus.text += fortune;
    corpus.text += "\n\n";  // a blank line between fortunes
  }
  corpus.text.pop_back();  // the text ends with one newline
  return corpus;
}

}  // namespace

Corpus load_default_corpus(const std::string& directory) {
  FortuneCorpus corpus = load_fortunes(directory);
  std::ostringstream description;
  description << "Debian fortunes (" << corpus.files << " files, " << corpus.fortunes << " fortunes, " << std::fixed
              << std::setprecision(1) << static_cast<double>(corpus.text.size()) / 1e6 << " MB)";
  return {std::move(corpus.text), description.str()};
}

std::string default_corpus(const std::string& directory) { return load_default_corpus(directory).text; }

std::string default_corpus_description(const std::string& directory) {
  return load_default_corpus(directory).description;
}

// ---- train / validation split ----

TextDataset TextDataset::from_text(std::string_view text, double val_fraction) {
  HC_CHECK(val_fraction > 0.0 && val_fraction < 1.0, Error,
           "TextDataset::from_text: val_fraction must be in (0, 1), got ", val_fraction);
  HC_CHECK(!text.empty(), Error, "TextDataset::from_text: the text is empty");
  std::vector<uint8_t> tokens = ByteTokenizer::encode(text);
  // nanoGPT's split: the first floor(n * (1 - val_fraction)) tokens train, the rest validate.
  auto train_size = static_cast<size_t>(static_cast<double>(tokens.size()) * (1.0 - val_fraction));
  std::vector<uint8_t> val(tokens.begin() + static_cast<std::ptrdiff_t>(train_size), tokens.end());
  tokens.resize(train_size);
  return TextDataset(std::move(tokens), std::move(val));
}

void TextDataset::check_fits(int64_t context) const {
  HC_CHECK(context > 0, Error, "TextDataset::check_fits: context must be positive, got ", context);
  const auto needed = static_cast<size_t>(context) + 1;
  for (auto [name, split] : {std::pair{"training", &train_}, std::pair{"validation", &val_}}) {
    HC_CHECK(split->size() >= needed, Error, "corpus too short: the ", name, " split has ", split->size(),
             " bytes, a context of ", context, " needs at least ", needed,
             " (", train_.size() + val_.size(), " bytes in all); use a longer text (--data FILE), a shorter context",
             (split == &val_ ? " or a larger validation fraction" : ""));
  }
}

// ---- batches ----

namespace {

// The number of windows of T tokens that have a target after them, after checking the arguments.
int64_t window_count(const char* fn, const std::vector<uint8_t>& tokens, int64_t batch, int64_t context) {
  HC_CHECK(batch > 0, Error, fn, ": batch must be positive, got ", batch);
  HC_CHECK(context > 0, Error, fn, ": context must be positive, got ", context);
  checked_numel(fn, {batch, context}, sizeof(int64_t));  // the batch tensors' shape, before anything is allocated
  const auto size = static_cast<int64_t>(tokens.size());
  HC_CHECK(size > context, Error, fn, ": ", size, " tokens are too few for a context of ", context,
           " (a window needs context + 1 tokens)");
  return size - context;  // starts 0 .. size - context - 1
}

// inputs[b] = tokens[start .. start + T), targets[b] = tokens[start + 1 .. start + T + 1).
Batch gather_windows(const std::vector<uint8_t>& tokens, const std::vector<int64_t>& starts, int64_t context) {
  const auto batch = static_cast<int64_t>(starts.size());
  Batch out{Tensor::empty({batch, context}, {.dtype = DType::Int64}),
            Tensor::empty({batch, context}, {.dtype = DType::Int64})};
  int64_t* inputs = out.inputs.data<int64_t>();
  int64_t* targets = out.targets.data<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    auto window = tokens.begin() + starts[b];
    std::copy(window, window + context, inputs + b * context);
    std::copy(window + 1, window + context + 1, targets + b * context);
  }
  return out;
}

}  // namespace

Batch sample_batch(const std::vector<uint8_t>& tokens, int64_t batch, int64_t context, Generator& gen) {
  const int64_t windows = window_count("sample_batch", tokens, batch, context);
  const uint64_t first = gen.reserve(static_cast<uint64_t>(batch));
  std::vector<int64_t> starts(batch);
  for (int64_t b = 0; b < batch; ++b) {
    double u = uniform_from_counter(first + b, gen.seed());  // in [0, 1)
    starts[b] = std::min(static_cast<int64_t>(u * static_cast<double>(windows)), windows - 1);
  }
  return gather_windows(tokens, starts, context);
}

std::vector<Batch> eval_batches(const std::vector<uint8_t>& tokens, int64_t batch, int64_t context, int64_t count) {
  const int64_t windows = window_count("eval_batches", tokens, batch, context);
  HC_CHECK(count > 0, Error, "eval_batches: count must be positive, got ", count);
  checked_numel("eval_batches", {count, batch, context}, sizeof(int64_t));  // all the batches together
  // Window i of the n = count * B starts at floor(i * last / (n - 1)): 0 first, the last window last.
  const int64_t n = count * batch, last = windows - 1;
  std::vector<Batch> batches;
  for (int64_t k = 0; k < count; ++k) {
    std::vector<int64_t> starts(batch);
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t i = k * batch + b;
      starts[b] = n == 1 ? 0 : static_cast<int64_t>(static_cast<__int128>(i) * last / (n - 1));  // i * last may pass 2^63
    }
    batches.push_back(gather_windows(tokens, starts, context));
  }
  return batches;
}

}  // namespace hcgrad::nn
