// The vit_digits example's model and data: shapes, the connections it builds, learning on a tiny set, and
// refusals of bad data files.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "digits.h"
#include "helpers.h"
#include "vit.h"

using namespace hctest;
namespace fs = std::filesystem;

namespace {

vit::ViTConfig tiny(const std::string& connection) {
  vit::ViTConfig c;
  c.dim = 16;
  c.depth = 2;
  c.heads = 2;
  c.dim_head = 8;
  c.mlp_dim = 32;
  c.connection = connection;
  c.streams = 2;
  return c;
}

// 20 digit-like images: class k lights up row k of the 8 x 8 grid (pixels 0..16), in the CSV format.
std::string write_rows_file(const fs::path& path) {
  std::ofstream out(path);
  for (int i = 0; i < 20; ++i) {
    const int label = i % 10;
    for (int p = 0; p < 64; ++p) out << (p / 8 == label % 8 ? 16 : (p * 7 + i) % 3) << ",";
    out << label << "\n";
  }
  return path.string();
}

}  // namespace

TEST_CASE("vit: logits have one row per image for every connection, and the blocks are wrapped as asked") {
  const Tensor images = rand({3, 1, 8, 8});
  for (const char* connection : {"residual", "hc", "mhc", "mhc-paper", "mhc-paper-identity"}) {
    CAPTURE(connection);
    vit::ViT model(tiny(connection), 1);
    CHECK(model.forward(images).shape() == Shape{3, 10});
    CHECK(model.layer_list.size() == 2);
    CHECK(model.layer_list[0]->hc_attn->name() ==
          std::string(connection == std::string("residual") ? "Residual"
                      : connection == std::string("hc")     ? "HyperConnections"
                      : connection == std::string("mhc")    ? "ManifoldHyperConnections"
                                                            : "PaperManifoldHyperConnections"));
  }
  vit::ViT model(tiny("mhc"), 1);
  CHECK_THROWS_WITH_AS(model.forward(rand({3, 8, 8})), doctest::Contains("expected images [B, 1, 8, 8]"), ShapeError);
  vit::ViTConfig bad = tiny("bogus");
  CHECK_THROWS_WITH_AS(vit::ViT(bad, 1), doctest::Contains("connection must be residual, hc, mhc, mhc-identity"), Error);
  bad.connection = "frac";
  CHECK_THROWS_WITH_AS(vit::ViT(bad, 1), doctest::Contains("mhc-paper-identity, got 'frac'"), Error);
}

TEST_CASE("vit: as vit.py, one head as wide as the model has no output Linear and mean pooling no class token") {
  auto names_of = [](const vit::ViT& model) {
    std::set<std::string> names;
    for (const auto& [name, p] : model.named_parameters()) names.insert(name);
    return names;
  };
  const Tensor images = rand({3, 1, 8, 8});
  vit::ViT standard(tiny("mhc"), 1);  // 2 heads of 8: to_out projects the merged heads [B, T, 16] to the width
  CHECK(names_of(standard).count("layers.0.attn.to_out.weight") == 1);
  CHECK(names_of(standard).count("cls_token") == 1);
  CHECK(standard.positions.shape() == Shape{1, 5, 16});

  vit::ViTConfig c = tiny("mhc");
  c.heads = 1;
  c.dim_head = 16;  // = dim: vit.py's project_out is false, to_out is nn.Identity
  c.pool = "mean";
  vit::ViT model(c, 1);
  CHECK(model.layer_list[0]->attn->out == nullptr);
  const std::set<std::string> names = names_of(model);
  CHECK(names.count("layers.0.attn.to_out.weight") == 0);
  CHECK(names.count("layers.1.attn.to_out.bias") == 0);
  CHECK(names.count("cls_token") == 0);
  CHECK(model.positions.shape() == Shape{1, 4, 16});  // the 4 patches only
  CHECK(model.forward(images).shape() == Shape{3, 10});
  CHECK(c.describe().ends_with(", mean pool"));
  // Their values against vit.py's: tools/refcheck's vit_s4_mean_pool_no_out_proj (tests/fixtures/connections).

  c.pool = "max";
  CHECK_THROWS_WITH_AS(vit::ViT(c, 1), doctest::Contains("pool must be cls or mean, got 'max'"), Error);
}

TEST_CASE("vit: a few AdamW steps fit a tiny labelled set (the gradient reaches every part of the model)") {
  const fs::path dir = fs::temp_directory_path() / ("hcgrad_vit_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const vit::Digits data = vit::load_digits(write_rows_file(dir / "rows.csv"));
  fs::remove_all(dir);
  REQUIRE(data.size() == 20);
  CHECK(data.images.shape() == Shape{20, 1, 8, 8});
  CHECK(values(data.images.narrow(0, 0, 1).reshape({64}))[0] == 1.0);  // 16 / 16
  vit::ViT model(tiny("mhc"), 2);
  nn::AdamW optimizer(model.parameters(), {.lr = 3e-3, .weight_decay = 0.0});
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    Tensor loss = cross_entropy(model.forward(data.images), data.labels);
    (step == 0 ? first : last) = loss.item();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  CHECK(last < 0.3 * first);
  for (const auto& [name, p] : model.named_parameters()) {
    CAPTURE(name);
    CHECK(p.grad().defined());
  }
}

TEST_CASE("vit: the digits split is seeded and disjoint, and bad files are refused with the line") {
  const fs::path dir = fs::temp_directory_path() / ("hcgrad_vit_split_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const vit::Digits data = vit::load_digits(write_rows_file(dir / "rows.csv"));
  const vit::DigitsSplit a = vit::split_digits(data, 0.25, 7), b = vit::split_digits(data, 0.25, 7);
  CHECK(a.test.size() == 5);
  CHECK(a.train.size() == 15);
  CHECK(values(a.test.images) == values(b.test.images));
  Generator gen(3);
  std::vector<int64_t> order = vit::shuffled_indices(20, gen);
  std::sort(order.begin(), order.end());
  for (int64_t i = 0; i < 20; ++i) CHECK(order[i] == i);  // a permutation

  std::ofstream(dir / "short.csv") << "1,2,3\n";
  CHECK_THROWS_WITH_AS(vit::load_digits((dir / "short.csv").string()),
                       doctest::Contains("line 1: expected 64 pixels and a label 0..9, got 3 values"), Error);
  std::ofstream(dir / "text.csv") << "a,b\n";
  CHECK_THROWS_WITH_AS(vit::load_digits((dir / "text.csv").string()), doctest::Contains("'a' is not a number"), Error);
  CHECK_THROWS_WITH_AS(vit::load_digits((dir / "missing.csv.gz").string()), doctest::Contains("bash tools/run.sh vit"),
                       Error);
  // Values a hostile or damaged file may hold: each refused with its line, never read as a pixel or label.
  const std::string pixels = [] {
    std::string row;
    for (int i = 0; i < 64; ++i) row += "1.0,";
    return row;
  }();
  for (auto [row, message] : {std::pair{pixels + "3.5", "the label is 3.5"}, std::pair{pixels + "nan", "the label is nan"},
                              std::pair{pixels + "10", "the label is 10"}, std::pair{"17," + pixels.substr(4) + "1",
                                                                                      "pixel 0 is 17"},
                              std::pair{pixels + "3abc", "'3abc' is not a number"},
                              std::pair{std::string(5000, '1'), "longer than 4094 bytes"}}) {
    const std::string expected = message;  // a copy: CAPTURE's lambda cannot capture a structured binding
    CAPTURE(expected);
    std::ofstream(dir / "bad.csv") << row << "\n";
    CHECK_THROWS_WITH_AS(vit::load_digits((dir / "bad.csv").string()), doctest::Contains(expected.c_str()), Error);
  }
  // A gzip file cut short: refused, not read as fewer images.
  const std::string whole = write_rows_file(dir / "rows.csv");
  const std::string packed = (dir / "rows.csv.gz").string();
  REQUIRE(std::system(("gzip -kf " + whole).c_str()) == 0);
  fs::resize_file(packed, fs::file_size(packed) / 2);
  CHECK_THROWS_WITH_AS(vit::load_digits(packed), doctest::Contains("truncated or not valid gzip"), Error);
  fs::remove_all(dir);
}
