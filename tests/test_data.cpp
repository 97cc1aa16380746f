// The text data pipeline (nn/data.h): byte tokenizer, file reading, the fortunes corpus, the split, batches.
// Windows are checked on token sequences whose values equal their positions (token i == i), so a window's
// first value is its start and every other value follows from it by hand.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;
namespace fs = std::filesystem;

namespace {

// Tokens 0, 1, ..., n-1 (n <= 256): the value of a token is its position.
std::vector<uint8_t> positions(int n) {
  std::vector<uint8_t> tokens(n);
  std::iota(tokens.begin(), tokens.end(), uint8_t{0});
  return tokens;
}

std::vector<int64_t> row(const Tensor& t, int64_t b) { return t.select(0, b).to_vector<int64_t>(); }

// A fresh directory under the system temp dir, removed (with its contents) when the test ends. A random
// suffix keeps two test runs at the same time (two build directories, ctest -j) out of each other's way.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("hcgrad_test_data_" + name + "_" + std::to_string(std::random_device{}()))) {
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& contents) const {
    std::ofstream(path / name, std::ios::binary) << contents;
    return (path / name).string();
  }
};

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = std::min(text.find('\n', pos), text.size());
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

// The corpus split at blank lines, sorted (enough for fortunes without blank lines of their own).
std::vector<std::string> sorted_paragraphs(std::string text) {
  REQUIRE(text.ends_with("\n"));
  text.pop_back();
  std::vector<std::string> parts;
  size_t pos = 0;
  for (size_t sep; (sep = text.find("\n\n", pos)) != std::string::npos; pos = sep + 2)
    parts.push_back(text.substr(pos, sep - pos));
  parts.push_back(text.substr(pos));
  std::sort(parts.begin(), parts.end());
  return parts;
}

}  // namespace

TEST_CASE("data: the byte tokenizer round-trips any text, one token per byte") {
  CHECK(ByteTokenizer::vocab_size == 256);
  CHECK(ByteTokenizer::encode("Hi!") == std::vector<uint8_t>{72, 105, 33});
  // UTF-8: "é" is C3 A9, "€" is E2 82 AC, U+1F600 is F0 9F 98 80.
  const std::string utf8 = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";
  CHECK(ByteTokenizer::encode(utf8) ==
        std::vector<uint8_t>{99, 97, 102, 0xC3, 0xA9, 32, 0xE2, 0x82, 0xAC, 32, 0xF0, 0x9F, 0x98, 0x80});
  std::vector<uint8_t> bytes = ByteTokenizer::encode(utf8);
  CHECK(ByteTokenizer::decode(std::vector<int64_t>(bytes.begin(), bytes.end())) == utf8);

  // Every byte value, NUL and 0xFF included.
  std::string all(256, '\0');
  std::vector<int64_t> ids(256);
  for (int i = 0; i < 256; ++i) {
    all[i] = static_cast<char>(i);
    ids[i] = i;
  }
  std::vector<uint8_t> encoded = ByteTokenizer::encode(all);
  REQUIRE(encoded.size() == 256);
  for (int i = 0; i < 256; ++i) CHECK(encoded[i] == i);
  CHECK(ByteTokenizer::decode(ids) == all);
  CHECK(ByteTokenizer::encode("").empty());
  CHECK(ByteTokenizer::decode({}).empty());
}

TEST_CASE("data: decode refuses ids outside 0..255") {
  CHECK_THROWS_WITH_AS(ByteTokenizer::decode({65, 256}),
                       doctest::Contains("ByteTokenizer::decode: token 256 at position 1 is outside"), IndexError);
  CHECK_THROWS_WITH_AS(ByteTokenizer::decode({-1}), doctest::Contains("token -1 at position 0"), IndexError);
  CHECK(ByteTokenizer::decode({255}) == "\xFF");
}

TEST_CASE("data: the validation split is the tail of the text") {
  std::string text;
  for (int i = 0; i < 1000; ++i) text.push_back(static_cast<char>('a' + i % 26));
  TextDataset data = TextDataset::from_text(text, 0.1);
  REQUIRE(data.train().size() == 900);
  REQUIRE(data.val().size() == 100);
  CHECK(std::string(data.train().begin(), data.train().end()) == text.substr(0, 900));
  CHECK(std::string(data.val().begin(), data.val().end()) == text.substr(900));

  // 10 bytes, 25% validation: floor(10 * 0.75) = 7 train, 3 validation.
  TextDataset small = TextDataset::from_text("0123456789", 0.25);
  CHECK(small.train() == std::vector<uint8_t>{'0', '1', '2', '3', '4', '5', '6'});
  CHECK(small.val() == std::vector<uint8_t>{'7', '8', '9'});

  for (double bad : {0.0, 1.0, -0.1, 1.5})
    CHECK_THROWS_WITH_AS(TextDataset::from_text("some text", bad),
                         doctest::Contains("TextDataset::from_text: val_fraction must be in (0, 1)"), Error);
  CHECK_THROWS_WITH_AS(TextDataset::from_text(""), doctest::Contains("the text is empty"), Error);
}

TEST_CASE("data: check_fits says which split is too short and what to do") {
  TextDataset data = TextDataset::from_text(std::string(400, 'x'), 0.1);  // 360 train, 40 validation
  CHECK_THROWS_WITH_AS(data.check_fits(128),
                       doctest::Contains("corpus too short: the validation split has 40 bytes, a context of 128 "
                                         "needs at least 129"),
                       Error);
  CHECK_THROWS_WITH_AS(data.check_fits(128), doctest::Contains("a longer text (--data FILE), a shorter context"),
                       Error);
  CHECK_THROWS_WITH_AS(data.check_fits(40), doctest::Contains("needs at least 41"), Error);
  CHECK_NOTHROW(data.check_fits(39));  // 40 tokens: 39 inputs and the target after them

  TextDataset half = TextDataset::from_text(std::string(100, 'x'), 0.6);  // 40 train, 60 validation
  CHECK_THROWS_WITH_AS(half.check_fits(50),
                       doctest::Contains("the training split has 40 bytes, a context of 50 needs at least 51"), Error);
  CHECK_THROWS_WITH_AS(half.check_fits(0), doctest::Contains("context must be positive, got 0"), Error);
}

TEST_CASE("data: sample_batch returns int64 windows and their next tokens") {
  std::vector<uint8_t> tokens = positions(200);
  Generator gen(3);
  Batch batch = sample_batch(tokens, 4, 8, gen);
  CHECK(gen.offset() == 4);  // one counter per window
  REQUIRE(batch.inputs.shape() == Shape{4, 8});
  REQUIRE(batch.targets.shape() == Shape{4, 8});
  CHECK(batch.inputs.dtype() == DType::Int64);
  CHECK(batch.targets.dtype() == DType::Int64);
  for (int64_t b = 0; b < 4; ++b) {
    std::vector<int64_t> in = row(batch.inputs, b), target = row(batch.targets, b);
    const int64_t start = in[0];
    CHECK(start >= 0);
    CHECK(start <= 200 - 8 - 1);  // the last window's target is the last token
    for (int64_t t = 0; t < 8; ++t) {
      CHECK(in[t] == start + t);
      CHECK(target[t] == start + t + 1);
    }
  }

  // On real text: each row plus its last target is a piece of the text, and the targets are the inputs
  // moved one token on.
  const std::string text = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.";
  std::vector<uint8_t> text_tokens = ByteTokenizer::encode(text);
  Batch real = sample_batch(text_tokens, 6, 10, gen);
  for (int64_t b = 0; b < 6; ++b) {
    std::vector<int64_t> in = row(real.inputs, b), target = row(real.targets, b);
    for (int64_t t = 0; t + 1 < 10; ++t) CHECK(target[t] == in[t + 1]);
    in.push_back(target.back());
    CHECK(text.find(ByteTokenizer::decode(in)) != std::string::npos);
  }
}

TEST_CASE("data: sample_batch is decided by the generator's seed and offset") {
  std::vector<uint8_t> tokens = positions(256);
  Generator a(11), b(11);
  Batch a1 = sample_batch(tokens, 8, 4, a), a2 = sample_batch(tokens, 8, 4, a);
  Batch b1 = sample_batch(tokens, 8, 4, b);
  CHECK(a1.inputs.to_vector<int64_t>() == b1.inputs.to_vector<int64_t>());
  CHECK(a1.targets.to_vector<int64_t>() == b1.targets.to_vector<int64_t>());
  CHECK(a1.inputs.to_vector<int64_t>() != a2.inputs.to_vector<int64_t>());  // the offset moved on

  // Resuming from (seed, offset), as a checkpoint does, gives the batch that came next.
  Generator resumed(11);
  resumed.set_offset(8);
  CHECK(sample_batch(tokens, 8, 4, resumed).inputs.to_vector<int64_t>() == a2.inputs.to_vector<int64_t>());

  Generator other_seed(12);
  CHECK(sample_batch(tokens, 8, 4, other_seed).inputs.to_vector<int64_t>() != a1.inputs.to_vector<int64_t>());
}

TEST_CASE("data: sample_batch reaches every start and no other") {
  std::vector<uint8_t> tokens = positions(12);  // context 3: starts 0 .. 12 - 3 - 1 = 8
  Generator gen(5);
  std::set<int64_t> starts;
  for (int draw = 0; draw < 200; ++draw) {
    Batch batch = sample_batch(tokens, 8, 3, gen);
    for (int64_t b = 0; b < 8; ++b) starts.insert(row(batch.inputs, b)[0]);
  }
  CHECK(starts == std::set<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});

  // The shortest text that fits: one window only.
  Batch only = sample_batch(positions(4), 2, 3, gen);
  CHECK(only.inputs.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 0, 1, 2});
  CHECK(only.targets.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3, 1, 2, 3});
}

TEST_CASE("data: eval_batches are evenly spaced, cover the split and never change") {
  std::vector<uint8_t> tokens = positions(100);
  // 4 batches of 3 windows of 5: 12 starts from 0 to 100 - 5 - 1 = 94, start i = floor(i * 94 / 11).
  const std::vector<int64_t> expected_starts = {0, 8, 17, 25, 34, 42, 51, 59, 68, 76, 85, 94};
  std::vector<Batch> batches = eval_batches(tokens, 3, 5, 4);
  REQUIRE(batches.size() == 4);
  std::vector<int64_t> starts;
  for (const Batch& batch : batches) {
    REQUIRE(batch.inputs.shape() == Shape{3, 5});
    REQUIRE(batch.targets.shape() == Shape{3, 5});
    CHECK(batch.inputs.dtype() == DType::Int64);
    for (int64_t b = 0; b < 3; ++b) {
      std::vector<int64_t> in = row(batch.inputs, b), target = row(batch.targets, b);
      starts.push_back(in[0]);
      for (int64_t t = 0; t < 5; ++t) {
        CHECK(in[t] == in[0] + t);
        CHECK(target[t] == in[0] + t + 1);
      }
    }
  }
  CHECK(starts == expected_starts);

  std::vector<Batch> again = eval_batches(tokens, 3, 5, 4);
  for (size_t k = 0; k < 4; ++k) CHECK(again[k].inputs.to_vector<int64_t>() == batches[k].inputs.to_vector<int64_t>());

  std::vector<Batch> single = eval_batches(tokens, 1, 5, 1);  // one window: the first
  CHECK(single[0].inputs.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
}

TEST_CASE("data: batch functions check their arguments") {
  std::vector<uint8_t> tokens = positions(10);
  Generator gen(0);
  CHECK_THROWS_WITH_AS(sample_batch(tokens, 0, 4, gen),
                       doctest::Contains("sample_batch: batch must be positive, got 0"), Error);
  CHECK_THROWS_WITH_AS(sample_batch(tokens, 2, -1, gen),
                       doctest::Contains("sample_batch: context must be positive, got -1"), Error);
  CHECK_THROWS_WITH_AS(sample_batch(tokens, 2, 10, gen),
                       doctest::Contains("sample_batch: 10 tokens are too few for a context of 10"), Error);
  CHECK(gen.offset() == 0);  // a refused call draws nothing
  CHECK_THROWS_WITH_AS(eval_batches(tokens, 2, 4, 0), doctest::Contains("eval_batches: count must be positive, got 0"),
                       Error);
  CHECK_THROWS_WITH_AS(eval_batches(tokens, 2, 12, 1),
                       doctest::Contains("eval_batches: 10 tokens are too few for a context of 12"), Error);
  // Absurd sizes: refused by their shape before anything is allocated (a context of INT64_MAX once overflowed
  // context + 1, a batch of 2^62 once asked for a vector of that many starts).
  const int64_t huge = int64_t(1) << 62, largest = std::numeric_limits<int64_t>::max();
  CHECK_THROWS_WITH_AS(sample_batch(tokens, huge, 4, gen), doctest::Contains("sample_batch: shape [4611686018427387904,4]"),
                       ShapeError);
  CHECK_THROWS_AS(sample_batch(tokens, 1, largest, gen), ShapeError);
  CHECK_THROWS_WITH_AS(sample_batch(tokens, 1, largest / 8, gen), doctest::Contains("tokens are too few for a context"),
                       Error);
  CHECK_THROWS_WITH_AS(eval_batches(tokens, int64_t(1) << 31, 4, int64_t(1) << 31),
                       doctest::Contains("eval_batches: shape [2147483648,2147483648,4] is too large"), ShapeError);
  CHECK(gen.offset() == 0);
}

TEST_CASE("data: read_text_file reads bytes exactly and explains what is wrong") {
  TempDir dir("read");
  const std::string contents = std::string("line one\r\nnul \0 here\n", 21) + "caf\xC3\xA9\n";
  CHECK(read_text_file(dir.write("text.txt", contents)) == contents);

  const std::string missing = (dir.path / "missing.txt").string();
  const std::string no_such_file = "read_text_file: no such file '" + missing + "'";
  CHECK_THROWS_WITH_AS(read_text_file(missing), doctest::Contains(no_such_file.c_str()), Error);
  CHECK_THROWS_WITH_AS(read_text_file(dir.path.string()), doctest::Contains("is a directory, not a text file"),
                       Error);
  CHECK_THROWS_WITH_AS(read_text_file(dir.write("empty.txt", "")), doctest::Contains("is empty"), Error);
  // Streams that may never end, and files past the limit.
  CHECK_THROWS_WITH_AS(read_text_file("/dev/zero"), doctest::Contains("'/dev/zero' is not a regular file"), Error);
  CHECK_THROWS_WITH_AS(read_text_file(""), doctest::Contains("the file name is empty"), Error);
  CHECK_THROWS_WITH_AS(read_text_file(dir.write("ten.txt", "0123456789"), 9),
                       doctest::Contains("is 10 bytes, more than the limit of 9 bytes"), Error);
  CHECK(read_text_file(dir.path / "ten.txt", 10) == "0123456789");

  const std::string locked = dir.write("locked.txt", "secret");
  fs::permissions(locked, fs::perms::none);
  if (std::ifstream(locked)) {
    MESSAGE("skipping the unreadable-file check: this user (root?) can read a file without permissions");
  } else {
    const std::string cannot_open = "read_text_file: cannot open '" + locked + "' for reading";
    CHECK_THROWS_WITH_AS(read_text_file(locked), doctest::Contains(cannot_open.c_str()), Error);
  }
}

TEST_CASE("data: default_corpus splits, filters and joins the fortune files") {
  TempDir dir("fortunes");
  dir.write("wisdom", "First fortune.\n%\n%\n   \n%\nSecond\nfortune, two lines.\n%\nThird has a % inside\n");
  dir.write("love", "Love one.\n\t-- Someone\n%\n");
  dir.write("kids", "");                             // an empty file adds nothing
  dir.write("men-women", "EXCLUDED FORTUNE\n%\n");  // not in the chosen list
  const std::string corpus = default_corpus(dir.path.string());
  CHECK(sorted_paragraphs(corpus) == std::vector<std::string>{"First fortune.", "Love one.\n\t-- Someone",
                                                             "Second\nfortune, two lines.", "Third has a % inside"});
  CHECK(corpus.find("EXCLUDED") == std::string::npos);
  CHECK(default_corpus(dir.path.string()) == corpus);
  CHECK(default_corpus_description(dir.path.string()) == "Debian fortunes (2 files, 4 fortunes, 0.0 MB)");

  TempDir only_excluded("excluded");
  only_excluded.write("men-women", "EXCLUDED FORTUNE\n%\n");
  CHECK_THROWS_WITH_AS(default_corpus(only_excluded.path.string()),
                       doctest::Contains("none of its fortune files were found"), Error);
  const std::string nowhere = (dir.path / "no-such-dir").string();
  for (const char* part : {"no such directory", "`fortunes` package", "apt-get install fortunes", "--data FILE"})
    CHECK_THROWS_WITH_AS(default_corpus(nowhere), doctest::Contains(part), Error);
}

TEST_CASE("data: the default corpus is the chosen Debian fortunes, shuffled") {
  if (!fs::is_directory(kFortunesDirectory)) {
    const std::string why = std::string("skipping the checks on the real corpus: Debian's `fortunes` package is not ") +
                            "installed (" + kFortunesDirectory + " is missing); checking the error instead";
    MESSAGE(why);
    CHECK_THROWS_WITH_AS(default_corpus(), doctest::Contains("apt-get install fortunes"), Error);
    return;
  }
  const std::vector<std::string> included = {
      "fortunes", "wisdom", "literature", "science", "people", "humorists", "education", "food", "kids",
      "pets", "computers", "linux", "platitudes", "riddles", "songs-poems", "work", "tao", "goedel", "magic",
      "paradoxum", "definitions", "startrek", "sports", "medicine", "law", "miscellaneous", "cookie", "love"};
  const std::vector<std::string> excluded = {"men-women", "ethnic", "drugs", "politics", "art", "zippy",
                                             "knghtbrd", "perl", "debian", "news", "translate-me"};
  const std::string corpus = default_corpus();
  REQUIRE(corpus.size() > 100000);
  CHECK(default_corpus() == corpus);

  std::vector<std::string> corpus_lines = lines_of(corpus);
  const std::unordered_set<std::string> corpus_line_set(corpus_lines.begin(), corpus_lines.end());
  CHECK(corpus_line_set.count("%") == 0);

  // Lines long enough to be distinctive, per included file; and which file each one belongs to.
  std::unordered_map<std::string, std::set<std::string>> files_of_line;
  int present = 0;
  for (const std::string& name : included) {
    fs::path file = fs::path(kFortunesDirectory) / name;
    if (!fs::exists(file)) continue;
    ++present;
    bool first_found = false;
    for (const std::string& line : lines_of(slurp(file))) {
      if (line.size() < 40) continue;
      files_of_line[line].insert(name);
      if (!first_found) {  // the file's first long line made it into the corpus
        CHECK_MESSAGE(corpus_line_set.count(line) == 1, (name + ": " + line));
        first_found = true;
      }
    }
  }
  CHECK(default_corpus_description().starts_with("Debian fortunes (" + std::to_string(present) + " files, "));

  // No long line that only an excluded file holds.
  int excluded_lines_checked = 0;
  std::vector<std::string> leaked;
  for (const std::string& name : excluded) {
    fs::path file = fs::path(kFortunesDirectory) / name;
    if (!fs::exists(file)) continue;
    for (const std::string& line : lines_of(slurp(file))) {
      if (line.size() < 40 || files_of_line.count(line)) continue;
      ++excluded_lines_checked;
      if (corpus_line_set.count(line)) leaked.push_back(name + ": " + line);
    }
  }
  CHECK(excluded_lines_checked > 1000);
  CHECK_MESSAGE(leaked.empty(), leaked.size() << " lines of excluded files, the first: "
                                    << (leaked.empty() ? std::string() : leaked.front()));

  // The validation tail mixes the files: count the files that have a line of their own in it. Unshuffled,
  // the tail would hold the last file or two.
  std::vector<uint8_t> val = TextDataset::from_text(corpus, 0.1).val();
  std::vector<std::string> val_lines = lines_of(std::string(val.begin(), val.end()));
  std::set<std::string> files_in_tail;
  for (const std::string& line : val_lines) {
    auto it = files_of_line.find(line);
    if (it != files_of_line.end() && it->second.size() == 1) files_in_tail.insert(*it->second.begin());
  }
  CHECK(files_in_tail.size() >= std::min<size_t>(20, present));
}
