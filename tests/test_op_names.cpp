// One name per op (docs/ops.md): the catalogue table there, core/ops.h, core/kernel_list.h and the source
// files must agree. The checker is a function over the files' text, so a second case can feed it a broken
// copy and see it fail.
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "helpers.h"

namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The source tree as the checker sees it; tests replace single files with broken copies.
struct SourceTree {
  fs::path root;
  std::map<std::string, std::string> overrides;  // path relative to root -> text
  bool exists(const std::string& rel) const { return overrides.count(rel) || fs::exists(root / rel); }
  std::string text(const std::string& rel) const {
    auto it = overrides.find(rel);
    return it != overrides.end() ? it->second : exists(rel) ? read_text(root / rel) : std::string();
  }
};

std::vector<std::string> matches(const std::string& text, const std::regex& pattern) {
  std::vector<std::string> found;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), pattern); it != std::sregex_iterator(); ++it)
    found.push_back((*it)[1]);
  return found;
}

bool contains_word(const std::string& text, const std::string& word) {
  return std::regex_search(text, std::regex("\\b" + word + "\\b"));
}

struct Row {
  std::string file;
  std::vector<std::string> ops, kernels;
};

// The rows between <!-- op-files --> and <!-- end -->: | file | `op` `op` | `kernel` `kernel` |
std::vector<Row> catalogue_rows(const std::string& ops_md) {
  const size_t begin = ops_md.find("<!-- op-files -->"), end = ops_md.find("<!-- end -->", begin);
  std::vector<Row> rows;
  if (begin == std::string::npos || end == std::string::npos) return rows;
  std::istringstream lines(ops_md.substr(begin, end - begin));
  const std::regex name("`([A-Za-z0-9_]+)`");
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| ", 0) != 0 || line.find("---") != std::string::npos || line.find("| file ") == 0) continue;
    std::vector<std::string> cells;
    std::stringstream cell_stream(line.substr(1));
    for (std::string cell; std::getline(cell_stream, cell, '|');) cells.push_back(cell);
    if (cells.size() < 3) continue;
    Row row{std::regex_replace(cells[0], std::regex("\\s"), ""), matches(cells[1], name), matches(cells[2], name)};
    rows.push_back(row);
  }
  return rows;
}

// Everything that disagrees with docs/ops.md's rule, one line each.
std::vector<std::string> op_name_problems(const SourceTree& tree, const std::vector<std::string>& registered) {
  std::vector<std::string> problems;
  const auto problem = [&](auto&&... parts) {
    std::ostringstream line;
    (line << ... << parts);
    problems.push_back(line.str());
  };
  const std::vector<Row> rows = catalogue_rows(tree.text("docs/ops.md"));
  if (rows.empty()) problem("docs/ops.md: no catalogue table between <!-- op-files --> and <!-- end -->");

  const std::regex declaration(R"(\n(?:Tensor|void|std::vector<Tensor>|std::pair<Tensor, Tensor>)\s+(\w+)\()");
  std::set<std::string> declared_ops;
  for (const std::string& op : matches(tree.text("core/ops.h"), declaration))
    if (op.rfind("check_", 0) != 0) declared_ops.insert(op);  // check_*: shared argument checks, not ops
  const std::vector<std::string> kernel_list = matches(tree.text("core/kernel_list.h"), declaration);
  const std::set<std::string> kernels(kernel_list.begin(), kernel_list.end());
  const std::set<std::string> registered_ops(registered.begin(), registered.end());

  std::map<std::string, int> kernel_rows, op_rows;
  const std::string emulated = tree.text("tests/emulation/test_emulated_kernels.cpp");
  for (const Row& row : rows) {
    const std::string op_file = "core/ops/" + row.file + ".cpp";
    if (!tree.exists(op_file)) problem("row ", row.file, ": no ", op_file);
    const std::string op_text = tree.text(op_file) + (row.file == "elementwise" ? tree.text("core/unary_ops.h") : "");
    for (const std::string& op : row.ops) {
      ++op_rows[op];
      if (!declared_ops.count(op) && !registered_ops.count(op))
        problem("row ", row.file, ": op ", op, " is neither declared in core/ops.h nor a registered op");
      else if (!contains_word(op_text, op))
        problem("row ", row.file, ": op ", op, " is not in ", op_file);
    }
    const std::string cpu_file = "core/cpu/" + row.file + ".cpp";
    const std::string cuda_text = tree.text("cuda/" + row.file + ".cu") + tree.text("cuda/" + row.file + ".cpp");
    for (const std::string& kernel : row.kernels) {
      ++kernel_rows[kernel];
      if (!kernels.count(kernel)) {
        problem("row ", row.file, ": kernel ", kernel, " is not in core/kernel_list.h");
        continue;
      }
      const std::regex definition("\\nvoid " + kernel + "\\(");
      if (!std::regex_search(tree.text(cpu_file), definition))
        problem("kernel ", kernel, ": no CPU definition in ", cpu_file);
      if (!std::regex_search(cuda_text, definition))
        problem("kernel ", kernel, ": no CUDA definition in cuda/", row.file, ".cu");
      if (kernel != "matmul" && !contains_word(emulated, "cpu::" + kernel))
        problem("kernel ", kernel, ": no emulated-CUDA test calls it (tests/emulation/test_emulated_kernels.cpp)");
      // A file of one op: its kernels are <op>, <op>_forward, <op>_backward or <op>_backward_<input>.
      if (row.ops.size() == 1) {
        std::string op = row.ops[0];
        if (!op.empty() && op.back() == '_') op.pop_back();  // in-place op: its kernel drops the underscore
        if (!std::regex_match(kernel, std::regex(op + "(_forward|_backward(_\\w+)?)?")))
          problem("kernel ", kernel, " of op ", row.ops[0], ": expected ", op, ", ", op, "_forward or ", op,
                  "_backward");
      }
    }
  }
  for (const std::string& kernel : kernels)
    if (kernel_rows[kernel] != 1)
      problem("kernel ", kernel, " is in ", kernel_rows[kernel], " rows of docs/ops.md (expected 1)");
  for (const std::string& op : declared_ops)
    if (op_rows[op] != 1) problem("op ", op, " is in ", op_rows[op], " rows of docs/ops.md (expected 1)");
  for (const std::string& op : registered_ops)
    if (op.rfind("test_", 0) != 0 && !op_rows.count(op))
      problem("registered op ", op, " (its backward node's name) is in no row of docs/ops.md");
  return problems;
}

SourceTree source_tree() { return {HCGRAD_SOURCE_DIR, {}}; }

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const std::string& line : lines) all += line + "\n";
  return all;
}

}  // namespace

TEST_CASE("op names: docs/ops.md, core/ops.h, core/kernel_list.h and the sources agree") {
  const std::vector<std::string> problems = op_name_problems(source_tree(), hcgrad::autograd::registered_ops());
  CHECK_MESSAGE(problems.empty(), joined(problems));
}

TEST_CASE("op names: the check fails on a renamed kernel, a stray op and a missing row") {
  SourceTree tree = source_tree();
  const std::string kernel_list = tree.text("core/kernel_list.h"), ops_md = tree.text("docs/ops.md");
  REQUIRE(!kernel_list.empty());
  REQUIRE(!ops_md.empty());

  // A kernel named apart from its op (the drift this test exists for).
  tree.overrides["core/kernel_list.h"] = std::regex_replace(
      kernel_list, std::regex("scaled_dot_product_attention_forward"), "attention_forward");
  std::string found = joined(op_name_problems(tree, hcgrad::autograd::registered_ops()));
  CHECK(found.find("kernel attention_forward is in 0 rows") != std::string::npos);
  CHECK(found.find("kernel scaled_dot_product_attention_forward is not in core/kernel_list.h") != std::string::npos);

  // The table lists the new name too: then the single-op rule and the missing definitions speak.
  tree.overrides["docs/ops.md"] = std::regex_replace(ops_md, std::regex("`scaled_dot_product_attention_forward`"),
                                                     "`attention_forward`");
  found = joined(op_name_problems(tree, hcgrad::autograd::registered_ops()));
  CHECK(found.find("kernel attention_forward of op scaled_dot_product_attention: expected") != std::string::npos);
  CHECK(found.find("kernel attention_forward: no CPU definition") != std::string::npos);

  // An op declared in core/ops.h that the table does not know, and a registered op in no row.
  tree.overrides.clear();
  tree.overrides["core/ops.h"] = tree.text("core/ops.h") + "\nTensor frobnicate(const Tensor& x);\n";
  found = joined(op_name_problems(tree, {"add", "frobnicate_grad"}));
  CHECK(found.find("op frobnicate is in 0 rows") != std::string::npos);
  CHECK(found.find("registered op frobnicate_grad") != std::string::npos);
}
