// nn modules: parameter bookkeeping, shapes, initialisation, a float64 gradcheck of every module (input and
// parameters), and a tiny GPT that learns a short string by heart.
#include <cmath>
#include <set>

#include "helpers.h"

using namespace hctest;
using namespace hcgrad::nn;
using hcgrad::autograd::gradcheck;
using TensorList = std::vector<Tensor>;

namespace {

// Gradchecks f with respect to `inputs` and every parameter of `module` (gradcheck perturbs the
// parameters' memory in place, so f can simply call the module).
void check_module_gradients(const Module& module, const std::function<Tensor(const std::vector<Tensor>&)>& f,
                            std::vector<Tensor> inputs) {
  for (const Tensor& p : module.parameters()) inputs.push_back(p);
  auto result = gradcheck(f, inputs);
  CHECK_MESSAGE(result.ok, result.message);
}

GPTConfig tiny_config() {
  return {.vocab_size = 11, .context = 6, .layers = 2, .dim = 8, .heads = 2, .mlp_ratio = 2, .dtype = DType::Float64};
}

}  // namespace

TEST_CASE("nn module: named parameters follow the module tree, once each") {
  GPT model(tiny_config(), 0);
  std::vector<std::string> names;
  for (const auto& [name, p] : model.named_parameters()) {
    names.push_back(name);
    CHECK(p.requires_grad());
    CHECK(p.is_leaf());
  }
  REQUIRE(names.size() == 2 + 2 * 12 + 2);  // wte, wpe; per block ln1 (2), qkv (2), proj (2), ln2 (2), fc (2), proj (2); ln_f
  CHECK(names[0] == "wte.weight");
  CHECK(names[1] == "wpe.weight");
  CHECK(names[2] == "blocks.0.ln1.weight");
  CHECK(names[4] == "blocks.0.attn.qkv.weight");
  CHECK(names.back() == "ln_f.bias");
  CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
  // 11*8 + 6*8 + 2 * (4*8 + (8*24 + 24) + (8*8 + 8) + (8*16 + 16) + (16*8 + 8)) + 2*8
  CHECK(model.num_parameters() == 88 + 48 + 2 * (32 + 216 + 72 + 144 + 136) + 16);
}

TEST_CASE("nn module: train/eval reaches every submodule, zero_grad drops gradients") {
  GPT model(tiny_config(), 0);
  model.eval();
  CHECK_FALSE(model.is_training());
  CHECK_FALSE(model.blocks->children()[1].second->is_training());
  model.train();
  CHECK(model.ln_f->is_training());
  Tensor ids = tensor({1, 2, 3, 4}, {1, 4}, {.dtype = DType::Int64});
  model.loss(ids, ids).backward();
  CHECK(model.wte->weight.grad().defined());
  model.zero_grad();
  for (const Tensor& p : model.parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("nn module: bad sizes and names are refused with the module's name") {
  Generator gen(0);
  CHECK_THROWS_WITH_AS(Linear(0, 3, gen), doctest::Contains("Linear: in_features must be positive"), Error);
  CHECK_THROWS_WITH_AS(SelfAttention(10, 3, gen), doctest::Contains("SelfAttention: heads (3) must divide dim (10)"),
                       Error);
  CHECK_THROWS_WITH_AS(Dropout(1.0, gen), doctest::Contains("Dropout: p must be in [0, 1)"), Error);
  GPTConfig config = tiny_config();
  config.heads = 3;
  CHECK_THROWS_WITH_AS(GPT(config, 0), doctest::Contains("heads (3) must divide dim (8)"), Error);
  Linear linear(4, 2, gen);
  CHECK_THROWS_WITH_AS(linear.forward(zeros({3, 5})), doctest::Contains("Linear: input of shape [3,5]"), ShapeError);
  GPT model(tiny_config(), 0);
  CHECK_THROWS_WITH_AS(model.forward(zeros({1, 7}, {.dtype = DType::Int64})),
                       doctest::Contains("sequence length 7 is outside [1, context = 6]"), ShapeError);
}

TEST_CASE("nn init: GPT-2 initialisation statistics and reproducibility") {
  GPTConfig config{.vocab_size = 256, .context = 64, .layers = 8, .dim = 64, .heads = 4};
  GPT a(config, 7), b(config, 7), c(config, 8);
  CHECK(values(a.wte->weight) == values(b.wte->weight));
  CHECK(values(a.wte->weight) != values(c.wte->weight));
  auto stddev = [](const Tensor& t) {
    std::vector<double> v = values(t);
    double sum = 0, sq = 0;
    for (double x : v) sum += x, sq += x * x;
    const double mean = sum / v.size();
    return std::sqrt(sq / v.size() - mean * mean);
  };
  CHECK(stddev(a.wte->weight) == doctest::Approx(0.02).epsilon(0.05));
  auto& block = *a.blocks->children()[0].second;
  NamedTensors params = block.named_parameters();
  for (const auto& [name, p] : params) {
    if (name == "attn.qkv.weight" || name == "mlp.fc.weight") CHECK(stddev(p) == doctest::Approx(0.02).epsilon(0.05));
    if (name == "attn.proj.weight" || name == "mlp.proj.weight")
      CHECK(stddev(p) == doctest::Approx(0.02 / std::sqrt(16.0)).epsilon(0.08));
    if (name.ends_with("bias")) CHECK(max_abs_diff(values(p), std::vector<double>(p.numel(), 0.0)) == 0);
    if (name == "ln1.weight") CHECK(max_abs_diff(values(p), std::vector<double>(p.numel(), 1.0)) == 0);
  }
  auto split = a.decay_split();
  CHECK(split.decay.size() == 4 * 8);            // qkv, attn.proj, fc, mlp.proj per block
  CHECK(split.no_decay.size() == 2 + 8 * 8 + 2);  // embeddings, biases, norm weights and biases
}

TEST_CASE("nn forward: Linear is x W^T + b, layouts as torch.nn") {
  Generator gen(0);
  Linear linear(3, 2, gen, {.dtype = DType::Float64});
  {
    autograd::NoGradGuard no_grad;
    linear.weight.copy_(tensor({1, 2, 3, 4, 5, 6}, {2, 3}));
    linear.bias.copy_(tensor({0.5, -1}, {2}));
  }
  Tensor x = tensor({1, 0, -1, 2, 1, 0}, {2, 3}, {.dtype = DType::Float64});
  // rows: [1,0,-1] -> [1-3+0.5, 4-6-1] ; [2,1,0] -> [2+2+0.5, 8+5-1]
  CHECK(close(linear.forward(x), {2, 2}, {-1.5, -3, 4.5, 12}));
  Embedding embedding(5, 2, gen, {.dtype = DType::Float64});
  Tensor rows = embedding.forward(tensor({4, 0}, {2}, {.dtype = DType::Int64}));
  std::vector<double> w = values(embedding.weight);
  CHECK(close(rows, {2, 2}, {w[8], w[9], w[0], w[1]}));
}

TEST_CASE("nn forward: attention is causal (later tokens never change earlier outputs)") {
  Generator gen(1);
  SelfAttention attention(8, 2, gen, {.dtype = DType::Float64});
  Tensor x = leaf({2, 5, 8}).detach();
  Tensor y = attention.forward(x);
  Tensor x2 = x.clone();
  {
    autograd::NoGradGuard no_grad;
    x2.narrow(1, 3, 2).fill_(7.0);  // change positions 3 and 4 only
  }
  Tensor y2 = attention.forward(x2);
  CHECK(max_abs_diff(values(y.narrow(1, 0, 3)), values(y2.narrow(1, 0, 3))) < 1e-12);
  CHECK(max_abs_diff(values(y.narrow(1, 3, 2)), values(y2.narrow(1, 3, 2))) > 1e-3);
  CHECK(close(causal_mask(3).to(DType::Float64), {3, 3}, {0, 1, 1, 0, 0, 1, 0, 0, 0}));
}

TEST_CASE("nn forward: Dropout zeroes about p, scales the rest by 1/(1-p), and is the identity in eval") {
  Generator gen(5);
  Dropout dropout(0.25, gen);
  Tensor x = ones({20000}, {.dtype = DType::Float64});
  std::vector<double> y = values(dropout.forward(x));
  int64_t zeros_seen = 0;
  for (double v : y) {
    if (v == 0) ++zeros_seen;
    else CHECK(v == doctest::Approx(1 / 0.75));
  }
  CHECK(zeros_seen / 20000.0 == doctest::Approx(0.25).epsilon(0.05));
  dropout.eval();
  CHECK(dropout.forward(x).same(x));
}

TEST_CASE("nn gradcheck: Linear, Embedding, LayerNorm, RMSNorm, Dropout") {
  Generator gen(2);
  Linear linear(3, 4, gen, {.dtype = DType::Float64});
  check_module_gradients(linear, [&](const TensorList& in) { return linear.forward(in[0]); }, {leaf({2, 5, 3})});
  Linear no_bias(3, 2, gen, {.bias = false, .dtype = DType::Float64});
  check_module_gradients(no_bias, [&](const TensorList& in) { return no_bias.forward(in[0]); }, {leaf({4, 3})});

  Embedding embedding(6, 3, gen, {.dtype = DType::Float64});
  Tensor ids = tensor({5, 0, 5, 2}, {2, 2}, {.dtype = DType::Int64});
  check_module_gradients(embedding, [&](const TensorList&) { return embedding.forward(ids); }, {});

  LayerNorm layer_norm(5, {.dtype = DType::Float64});
  RMSNorm rms_norm(5, {.eps = 1e-6, .dtype = DType::Float64});
  normal_(layer_norm.weight, 1.0, 0.5, gen);  // away from the 1/0 init so every term is exercised
  normal_(layer_norm.bias, 0.0, 0.5, gen);
  normal_(rms_norm.weight, 1.0, 0.5, gen);
  check_module_gradients(layer_norm, [&](const TensorList& in) { return layer_norm.forward(in[0]); }, {leaf({3, 5})});
  check_module_gradients(rms_norm, [&](const TensorList& in) { return rms_norm.forward(in[0]); }, {leaf({3, 5})});

  // Dropout draws a new mask per call; rewinding the generator makes f a fixed function for the check.
  Generator masks(9);
  Dropout dropout(0.5, masks);
  auto result = gradcheck(
      [&](const TensorList& in) {
        masks.set_offset(0);
        return dropout.forward(in[0]);
      },
      {leaf({4, 6})});
  CHECK_MESSAGE(result.ok, result.message);
}

TEST_CASE("nn gradcheck: SelfAttention, MLP, Block") {
  GPTConfig config = tiny_config();
  Generator gen(3);
  SelfAttention attention(8, 2, gen, {.dtype = DType::Float64});
  normal_(attention.qkv->weight, 0.0, 0.5, gen);  // larger than init so the softmax is not uniform
  check_module_gradients(attention, [&](const TensorList& in) { return attention.forward(in[0]); },
                         {leaf({2, 4, 8})});
  MLP mlp(config, gen, gen);
  check_module_gradients(mlp, [&](const TensorList& in) { return mlp.forward(in[0]); }, {leaf({2, 3, 8})});
  Block block(config, 0, gen, gen);
  check_module_gradients(block, [&](const TensorList& in) { return block.forward(in[0]); }, {leaf({1, 4, 8})});
}

TEST_CASE("nn gradcheck: GPT loss with respect to every parameter, dropout on") {
  GPTConfig config = tiny_config();
  config.dropout = 0.1;
  GPT model(config, 4);
  Generator& masks = model.dropout_generator();
  const uint64_t start = masks.offset();
  Tensor ids = tensor({1, 5, 9, 2, 3, 10, 0, 4}, {2, 4}, {.dtype = DType::Int64});
  Tensor targets = tensor({5, 9, 2, 3, 10, 0, 4, 7}, {2, 4}, {.dtype = DType::Int64});
  check_module_gradients(model,
                         [&](const TensorList&) {
                           masks.set_offset(start);
                           return model.loss(ids, targets);
                         },
                         {});
}

TEST_CASE("nn generate: greedy decoding is deterministic, sampling follows the generator") {
  GPT model(tiny_config(), 5);
  Generator g1(1), g2(1), g3(2);
  std::vector<int64_t> prompt = {3, 4};
  auto greedy = model.generate(prompt, 8, 0.0, 0, g1);
  REQUIRE(greedy.size() == 10);  // longer than the context: the window slides
  CHECK(greedy == model.generate(prompt, 8, 0.0, 0, g3));
  auto a = model.generate(prompt, 20, 1.0, 5, g1), b = model.generate(prompt, 20, 1.0, 5, g2);
  CHECK(a == b);
  for (int64_t t : a) CHECK((t >= 0 && t < 11));
  // top_k = 1 is greedy whatever the temperature.
  CHECK(model.generate(prompt, 8, 3.0, 1, g3) == greedy);
}

TEST_CASE("nn training: a tiny GPT learns a short string by heart (loss near zero)") {
  // Every window of the string is one sequence; targets are the next bytes. 2 layers, dim 32, AdamW.
  const std::string text = "hcgrad learns this line by heart.";
  const int64_t T = 16, windows = static_cast<int64_t>(text.size()) - T;
  std::vector<int64_t> ids, targets;
  for (int64_t w = 0; w < windows; ++w)
    for (int64_t t = 0; t < T; ++t) {
      ids.push_back(static_cast<unsigned char>(text[w + t]));
      targets.push_back(static_cast<unsigned char>(text[w + t + 1]));
    }
  Tensor x = from_vector(ids, {windows, T}), y = from_vector(targets, {windows, T});
  GPT model({.vocab_size = 256, .context = T, .layers = 2, .dim = 32, .heads = 4}, 11);
  AdamW optimizer(model.parameters(), {.lr = 1e-2, .weight_decay = 0.0});
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    Tensor loss = model.loss(x, y);
    if (step == 0) first = loss.item();
    last = loss.item();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  CHECK(first == doctest::Approx(std::log(256.0)).epsilon(0.1));  // starts near uniform over bytes
  CHECK(last < 0.05);
  // Greedy decoding from the first 16 bytes reproduces the rest of the line.
  Generator gen(0);
  std::vector<int64_t> prompt(ids.begin(), ids.begin() + T);
  std::vector<int64_t> out = model.generate(prompt, windows, 0.0, 0, gen);
  CHECK(std::string(out.begin(), out.end()) == text);
}

TEST_CASE("nn gpt with hyper-connections: at init it computes the residual GPT, gradients check") {
  GPTConfig plain = tiny_config();
  GPTConfig hc = plain;
  hc.connection = "hc";
  hc.streams = 4;
  GPT a(plain, 21), b(hc, 21);
  CHECK(b.num_parameters() > a.num_parameters());
  Tensor ids = tensor({1, 5, 9, 2, 3, 10, 0, 4}, {2, 4}, {.dtype = DType::Int64});
  // The streams sum to 4 x the residual stream, and ln_f is scale-invariant once its eps is 0.
  a.ln_f->eps = b.ln_f->eps = 0;
  CHECK(max_abs_diff(values(a.forward(ids)), values(b.forward(ids))) < 1e-12);
  a.ln_f->eps = b.ln_f->eps = 1e-5;
  auto split = b.decay_split();
  for (const Tensor& p : split.decay) CHECK_FALSE(p.same(b.blocks->children()[0].second->named_parameters()[0].second));
  Tensor targets = tensor({5, 9, 2, 3, 10, 0, 4, 7}, {2, 4}, {.dtype = DType::Int64});
  for (const auto& [name, p] : b.named_parameters())  // move the connections off their init
    if (name.find(".hc_") != std::string::npos) {
      autograd::NoGradGuard no_grad;
      Generator gen(name.size());
      Tensor(p).add_(randn(p.shape(), p.options(), gen) * 0.3);
    }
  check_module_gradients(b, [&](const TensorList&) { return b.loss(ids, targets); }, {});
  plain.streams = 2;
  CHECK_THROWS_WITH_AS(GPT(plain, 0), doctest::Contains("streams = 2 and fracs = 1 need a connection other than residual"), Error);
}

TEST_CASE("nn gpt with mHC: runs, trains its connection parameters, gradients check") {
  GPTConfig config = tiny_config();
  config.connection = "mhc";
  config.streams = 3;
  GPT model(config, 22);
  Tensor ids = tensor({1, 5, 9, 2, 3, 10, 0, 4}, {2, 4}, {.dtype = DType::Int64});
  Tensor targets = tensor({5, 9, 2, 3, 10, 0, 4, 7}, {2, 4}, {.dtype = DType::Int64});
  bool has_sinkhorn_weights = false;
  for (const auto& [name, p] : model.named_parameters()) has_sinkhorn_weights |= name.ends_with("hc_mlp.residual_scale");
  CHECK(has_sinkhorn_weights);
  check_module_gradients(model, [&](const TensorList&) { return model.loss(ids, targets); }, {});
}
