// GPT: MLP, Block, the model, its initialisation and sampling. Shapes as in nn/gpt.h.
#include "hcgrad/nn/gpt.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"

namespace hcgrad::nn {

void GPTConfig::validate() const {
  auto positive = [](const char* name, int64_t value) {
    HC_CHECK(value > 0, Error, "GPT: ", name, " must be positive, got ", value);
  };
  positive("vocab_size", vocab_size);
  positive("context", context);
  positive("layers", layers);
  positive("dim", dim);
  positive("heads", heads);
  positive("mlp_ratio", mlp_ratio);
  HC_CHECK(dim % heads == 0, Error, "GPT: heads (", heads, ") must divide dim (", dim, ")");
  HC_CHECK(dropout >= 0 && dropout < 1, Error, "GPT: dropout must be in [0, 1), got ", dropout);
  HC_CHECK(is_floating(dtype), DTypeError, "GPT: dtype must be floating, got ", dtype);
  HC_CHECK(is_connection_name(connection), Error, "GPT: connection must be ", connection_names_phrase(), ", got '",
           connection, "'");
  HC_CHECK(streams >= 1, Error, "GPT: streams must be >= 1, got ", streams);
  HC_CHECK(fracs >= 1 && dim % fracs == 0, Error, "GPT: fracs (", fracs, ") must be >= 1 and divide dim (", dim, ")");
  HC_CHECK(connection != "residual" || (streams == 1 && fracs == 1), Error, "GPT: streams = ", streams,
           " and fracs = ", fracs, " need a connection other than residual");
  HC_CHECK(!connection.starts_with("frac") || fracs > 1, Error, "GPT: connection ", connection,
           " needs fracs > 1, got ", fracs);
  HC_CHECK(!connection.starts_with("mhc") || fracs == 1 || connection == "mhc", Error, "GPT: connection ", connection,
           " has no fractions (fracs = ", fracs, ")");
}

std::string GPTConfig::describe() const {
  std::ostringstream out;
  out << layers << " layers, dim " << dim << ", " << heads << " heads, context " << context << ", vocab "
      << vocab_size;
  if (connection != "residual") {
    out << ", " << connection << " with ";
    if (streams > 1 || fracs == 1) out << streams << (streams == 1 ? " stream" : " streams") << (fracs > 1 ? " x " : "");
    if (fracs > 1) out << fracs << " fractions";
  }
  return out.str();
}

// ---- MLP, Block ----

MLP::MLP(const GPTConfig& config, Generator& init, Generator& masks) {
  const LinearOptions linear{.bias = config.bias, .dtype = config.dtype};
  fc = register_module("fc", std::make_shared<Linear>(config.dim, config.mlp_ratio * config.dim, init, linear));
  proj = register_module("proj", std::make_shared<Linear>(config.mlp_ratio * config.dim, config.dim, init, linear));
  dropout = register_module("dropout", std::make_shared<Dropout>(config.dropout, masks));
}

Tensor MLP::forward(const Tensor& x) const { return dropout->forward(proj->forward(gelu_tanh(fc->forward(x)))); }

Block::Block(const GPTConfig& config, int64_t index, Generator& init, Generator& masks,
             const ConnectionBuilder& init_hc) {
  const NormOptions norm{.bias = config.bias, .dtype = config.dtype};
  const SelfAttentionOptions attention{
      .dropout = config.dropout, .bias = config.bias, .dtype = config.dtype, .dropout_generator = &masks};
  ln1 = register_module("ln1", std::make_shared<LayerNorm>(config.dim, norm));
  attn = register_module("attn", std::make_shared<SelfAttention>(config.dim, config.heads, init, attention));
  ln2 = register_module("ln2", std::make_shared<LayerNorm>(config.dim, norm));
  mlp = register_module("mlp", std::make_shared<MLP>(config, init, masks));
  // The branches see one residual [B, T, C]; the connections own the streams around them.
  const ConnectionBuilder plain = [](int64_t, Branch branch) {
    return Connection(std::make_shared<Residual>(std::move(branch)));
  };
  const ConnectionBuilder& connect = init_hc ? init_hc : plain;
  hc_attn = connect(2 * index, [this](const Tensor& u) { return attn->forward(ln1->forward(u)); });
  hc_mlp = connect(2 * index + 1, [this](const Tensor& u) { return mlp->forward(ln2->forward(u)); });
  register_module("hc_attn", hc_attn.module());
  register_module("hc_mlp", hc_mlp.module());
}

Tensor Block::forward(const Tensor& x) const {
  Tensor h = hc_attn(x);  // x + attn(ln1(x)) for the plain residual
  return hc_mlp(h);       // h + mlp(ln2(h))
}

// ---- GPT ----

namespace {
GPTConfig validated(const GPTConfig& config) {
  config.validate();
  return config;
}
}  // namespace

GPT::GPT(const GPTConfig& config, uint64_t seed)
    : config_(validated(config)), dropout_gen_(seed ^ 0x9E3779B97F4A7C15ull) {
  Generator init(seed);
  const EmbeddingOptions embedding{.dtype = config.dtype};
  wte = register_module("wte", std::make_shared<Embedding>(config.vocab_size, config.dim, init, embedding));
  wpe = register_module("wpe", std::make_shared<Embedding>(config.context, config.dim, init, embedding));
  // One factory call decides the connection of every block (README of the hyper-connections library).
  const NamedConnections made =
      connections_by_name(config.connection, config.streams, config.fracs, config.dim, config.dtype,
                          config.recompute_connections);
  expand_stream = made.expand_stream;
  reduce_stream = made.reduce_stream;
  register_module("expand_stream", expand_stream);
  register_module("reduce_stream", reduce_stream);
  blocks = register_module("blocks", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < config.layers; ++i)
    block_list_.push_back(blocks->push_back(std::make_shared<Block>(config, i, init, dropout_gen_, made.init_hc)));
  ln_f = register_module("ln_f", std::make_shared<LayerNorm>(config.dim, NormOptions{.bias = config.bias,
                                                                                     .dtype = config.dtype}));
  // The layers above drew PyTorch's default init; GPT-2's replaces it, from the same stream.
  reset_parameters(init);
}

void GPT::reset_parameters(Generator& gen) {
  const double std = 0.02, residual_std = 0.02 / std::sqrt(2.0 * config_.layers);
  for (const auto& [name, p] : named_parameters()) {
    if (name.find(".hc_") != std::string::npos) continue;  // hyper-connections keep their own init
    const bool is_bias = name.ends_with(".bias");
    const bool is_norm = name.starts_with("ln_f.") || name.find(".ln1.") != std::string::npos ||
                         name.find(".ln2.") != std::string::npos;
    const bool writes_residual = name.ends_with("attn.proj.weight") || name.ends_with("mlp.proj.weight");
    if (is_norm) {
      autograd::NoGradGuard no_grad;
      Tensor(p).fill_(is_bias ? 0.0 : 1.0);
    } else if (is_bias) {
      autograd::NoGradGuard no_grad;
      Tensor(p).zero_();
    } else {
      normal_(p, 0.0, writes_residual ? residual_std : std, gen);
    }
  }
}

Tensor GPT::embed(const Tensor& ids) const {
  HC_CHECK(ids.dim() == 2 && ids.dtype() == DType::Int64, ShapeError, "GPT: expected int64 ids [B, T], got ",
           ids.dtype(), " ", ids.shape());
  const int64_t T = ids.shape()[1];
  HC_CHECK(T >= 1 && T <= config_.context, ShapeError, "GPT: sequence length ", T, " is outside [1, context = ",
           config_.context, "] (ids ", ids.shape(), ")");
  Tensor positions = arange(T, {.dtype = DType::Int64, .device = ids.device()});
  Tensor x = wte->forward(ids) + wpe->forward(positions);  // [B, T, C] + [T, C]
  return expand_stream->forward(x);  // [B, T, C] -> [B, T, S, C]: a copy per stream (identity for "residual")
}

Tensor GPT::forward(const Tensor& ids) const {
  Tensor x = embed(ids);
  for (const auto& block : block_list_) x = block->forward(x);
  x = reduce_stream->forward(x);  // the sum of the streams: [B, T, C]
  x = ln_f->forward(x);
  return matmul(x, wte->weight.t());  // tied head: [B, T, C] @ [C, V]
}

std::vector<SubLayerTrace> GPT::trace(const Tensor& ids) const {
  autograd::NoGradGuard no_grad;
  Tensor x = embed(ids);
  std::vector<SubLayerTrace> layers;
  for (const auto& block : block_list_)
    for (const Connection* hc : {&block->hc_attn, &block->hc_mlp}) {
      // The forward pass of Block, in the manual form, to keep the branch input.
      std::optional<ConnectionMaps> maps = (*hc)->maps(x);
      ConnectionSplit split = (*hc)->split(x);
      layers.push_back({split.branch_input, std::move(maps)});
      x = split.add_residual((*hc)->branch()(split.branch_input));
    }
  return layers;
}

Tensor GPT::loss(const Tensor& ids, const Tensor& targets) const {
  HC_CHECK(targets.shape() == ids.shape(), ShapeError, "GPT: targets ", targets.shape(), " must match ids ",
           ids.shape());
  Tensor logits = forward(ids);
  return cross_entropy(logits.reshape({-1, config_.vocab_size}), targets.reshape({-1}));
}

GPT::DecaySplit GPT::decay_split() const {
  DecaySplit split;
  for (const auto& [name, p] : named_parameters()) {
    const bool embedding = name.starts_with("wte.") || name.starts_with("wpe.");
    // Nor the static connection weights (static_alpha / static_beta, the paper mHC's b_pre / b_post / b_res).
    (p.dim() >= 2 && !embedding && !is_static_connection_weight(name) ? split.decay : split.no_decay).push_back(p);
  }
  return split;
}

std::vector<int64_t> GPT::generate(std::vector<int64_t> tokens, int64_t count, double temperature, int64_t top_k,
                                   Generator& gen) const {
  HC_CHECK(!tokens.empty(), Error, "generate: the prompt must have at least one token");
  HC_CHECK(temperature >= 0, Error, "generate: temperature must be >= 0, got ", temperature);
  autograd::NoGradGuard no_grad;
  const int64_t V = config_.vocab_size;
  for (int64_t step = 0; step < count; ++step) {
    // The model sees at most `context` tokens: the most recent ones.
    const int64_t T = std::min<int64_t>(static_cast<int64_t>(tokens.size()), config_.context);
    std::vector<int64_t> window(tokens.end() - T, tokens.end());
    Tensor logits = forward(from_vector(window, {1, T}).to(wte->weight.device())).select(1, T - 1).reshape({V});
    std::vector<double> scores = logits.to(DType::Float64).to_vector<double>();

    std::vector<int64_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
    if (temperature == 0) {
      tokens.push_back(order[0]);
      continue;
    }
    const int64_t keep = top_k > 0 ? std::min(top_k, V) : V;
    // softmax over the kept tokens, then inverse-CDF sampling with one uniform draw.
    std::vector<double> weights(keep);
    for (int64_t i = 0; i < keep; ++i) weights[i] = std::exp((scores[order[i]] - scores[order[0]]) / temperature);
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    double u = uniform_from_counter(gen.reserve(1), gen.seed()) * total;
    int64_t pick = keep - 1;
    for (int64_t i = 0; i < keep; ++i) {
      if (u < weights[i]) {
        pick = i;
        break;
      }
      u -= weights[i];
    }
    tokens.push_back(order[pick]);
  }
  return tokens;
}

}  // namespace hcgrad::nn
