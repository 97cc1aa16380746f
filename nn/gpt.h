// A GPT-2-style language model (Radford et al. 2019), small enough to train on a CPU:
//
//   ids [B, T] -> wte(ids) + wpe(0..T-1)                      token + learned position embeddings  [B, T, C]
//              -> L x Block: x = x + attn(ln1(x)); x = x + mlp(ln2(x))      (pre-norm residual)
//              -> ln_f -> logits = x wte^T                    tied output head                      [B, T, V]
//
// Parameter names follow the module tree ("blocks.0.attn.qkv.weight"); the head is wte itself, so a
// checkpoint stores it once.
#pragma once

#include <string>
#include <vector>

#include "hcgrad/nn/attention.h"
#include "hcgrad/nn/hyper_connections_factory.h"

namespace hcgrad::nn {

struct GPTConfig {
  int64_t vocab_size = 256;  // byte-level
  int64_t context = 128;     // longest sequence (position embeddings)
  int64_t layers = 4;
  int64_t dim = 128;
  int64_t heads = 4;
  int64_t mlp_ratio = 4;     // hidden width of the MLP = mlp_ratio * dim
  double dropout = 0.0;
  bool bias = true;
  DType dtype = DType::Float32;
  // How a block's branches (attention, MLP) join the residual stream, by name (connections_by_name in
  // nn/hyper_connections_factory.h lists them): "residual" (x + f(x)), "hc" (hyper-connections over `streams`
  // streams), "frac" / "frac-paper" (Frac-Connections as the library / the Frac paper compute them: the width
  // split into `fracs` fractions, on `streams` streams, default 1), "mhc" / "mhc-paper" (manifold-constrained
  // HC as the library / the paper compute it) and "mhc-identity" / "mhc-paper-identity" (the same, starting as
  // a pre-norm residual); "hc-fused", "frac-fused", "frac-paper-fused", "mhc-fused" and "mhc-paper-fused"
  // are "hc", "frac", "frac-paper", "mhc" and "mhc-paper" run as the fused hc_width / hc_depth op pair instead
  // of the composition of small ops (same values, for comparing). The streams are expanded once after
  // the embeddings and reduced once before ln_f.
  std::string connection = "residual";
  int64_t streams = 1;
  int64_t fracs = 1;
  // Where a connection runs the fused op pair: false keeps its coefficients from forward to backward instead
  // of recomputing them (HyperConnectionsOptions::recompute).
  bool recompute_connections = true;

  // Throws a clear Error for non-positive sizes or heads not dividing dim.
  void validate() const;
  std::string describe() const;  // "4 layers, dim 128, 4 heads, context 128, vocab 256"
};

// Linear -> GELU (tanh form, as GPT-2) -> Linear.
class MLP : public Module {
 public:
  // `init` draws the default initialisation, `masks` the dropout masks.
  MLP(const GPTConfig& config, Generator& init, Generator& masks);
  Tensor forward(const Tensor& x) const;  // [..., C] -> [..., C]

  std::shared_ptr<Linear> fc, proj;
  std::shared_ptr<Dropout> dropout;
};

// One pre-norm transformer block. Each branch is wrapped by its own connection (layer_index 2i and 2i + 1 for
// block i): x + attn(ln1(x)) for the plain residual, the width / depth connections of HC, Frac or mHC otherwise,
// where x holds all streams in the connection's layout.
class Block : public Module {
 public:
  // Without a builder the branches join a plain residual.
  Block(const GPTConfig& config, int64_t index, Generator& init, Generator& masks,
        const ConnectionBuilder& init_hc = {});
  Tensor forward(const Tensor& x) const;

  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<SelfAttention> attn;
  std::shared_ptr<MLP> mlp;
  Connection hc_attn, hc_mlp;  // registered as "hc_attn", "hc_mlp"
};

// One sub-layer (a block's attention or MLP) seen in a forward pass, for the diagnostics (nn/diagnostics.h).
struct SubLayerTrace {
  Tensor branch_input;                  // [B, T, C]: what the branch read (before its LayerNorm)
  std::optional<ConnectionMaps> maps;   // its connection's maps; nullopt for the plain residual and Frac
};

class GPT : public Module {
 public:
  // Every random number of the model (initialisation, then dropout masks) comes from `seed`.
  GPT(const GPTConfig& config, uint64_t seed);
  GPT(const GPT&) = delete;  // the Dropout modules point at this model's generator
  GPT& operator=(const GPT&) = delete;
  Tensor forward(const Tensor& ids) const;  // int64 [B, T] (T <= context) -> logits [B, T, vocab]
  // Mean cross-entropy of next-token prediction: logits of ids vs targets, both [B, T].
  Tensor loss(const Tensor& ids, const Tensor& targets) const;
  // forward() without autograd, recording every sub-layer (2 per block, attention first), in the model's current
  // mode (call eval() first to leave dropout out).
  std::vector<SubLayerTrace> trace(const Tensor& ids) const;

  // GPT-2's initialisation: weights and embeddings ~ N(0, 0.02), biases 0, norms 1, and the projections
  // that write into the residual stream (attn.proj, mlp.proj) ~ N(0, 0.02 / sqrt(2 layers)), so the
  // residual's variance does not grow with depth.
  void reset_parameters(Generator& gen);

  // Parameters split for AdamW: matrices that multiply activations get weight decay; biases, norm
  // weights and embeddings do not (decaying them pulls useful scales and embeddings toward zero).
  struct DecaySplit {
    std::vector<Tensor> decay, no_decay;
  };
  DecaySplit decay_split() const;

  // Continues `prompt` by `tokens` tokens, sampling each from softmax(logits / temperature) restricted
  // to the top_k most likely (top_k <= 0: all). temperature 0 means greedy. Runs without autograd.
  std::vector<int64_t> generate(std::vector<int64_t> prompt, int64_t tokens, double temperature, int64_t top_k,
                                Generator& gen) const;

  Generator& dropout_generator() { return dropout_gen_; }
  const GPTConfig& config() const { return config_; }

  std::shared_ptr<Embedding> wte, wpe;
  std::shared_ptr<ModuleList> blocks;  // of Block
  std::shared_ptr<LayerNorm> ln_f;
  std::shared_ptr<Transform> expand_stream, reduce_stream;  // [B, T, C] <-> the streams (identity for "residual")

 private:
  Tensor embed(const Tensor& ids) const;  // ids [B, T] -> token + position embeddings, expanded to the streams
  GPTConfig config_;
  std::vector<std::shared_ptr<Block>> block_list_;  // the same blocks, typed
  Generator dropout_gen_;  // drawn by every Dropout of the model; a checkpoint stores its offset
};

}  // namespace hcgrad::nn
