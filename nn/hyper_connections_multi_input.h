// The `hyper-connections` library's multi-input-stream module (hyper_connections_with_multi_input_streams.py,
// docs/connections.md): HyperConnections (F = 1, V = 1) whose branch also takes extra tensors that
// live in the residual-stream layout (streams folded into the batch, "L1": [B·S, N*, D_j], row b·S + s =
// stream s of item b), e.g. a second sequence carried alongside. Each extra input is reduced over its streams
// with its own learned weights before the branch sees it; it gets no residual update.
//
// Main stream, per token (x_s ∈ R^D stream s; HC paper eq. (1)-(9)):
//   x̂_s = RMSNorm(x_s),   α[s, ·] = A[s, ·] + sα·φ(Wα x̂_s),   β_s = bβ[s] + sβ·φ(wβ · x̂_s)
//   u = Σ_s α[s, 0] x_s,   r_t = Σ_s α[s, 1 + t] x_s,   new_t = dropout(r_t + β_t · y)
// Extra input j (z_s ∈ R^{D_j}), with its own RMSNorm(D_j), projection p_j [1, D_j] and scale sj:
//   w_s = a_j[s] + sj · φ(p_j · RMSNorm(z_s)),   reduced_j = Σ_s w_s z_s        a_j init e_k
// φ = tanh (or the identity). Init: A = [e_k | I] (k = layer_index mod S), β = 1, projections 0, scales 0.01:
// the branch reads the home stream, every extra input reduces to its home stream, every stream becomes x_t + y.
//
// Additional input paths are names. The library takes a path as an int p >= 1 (the branch's positional
// argument p, i.e. `branch_args[p − 1]`) or a str (a keyword argument), optionally with its own dim D_j; in
// hcgrad the integer path p is the name std::to_string(p) ("1"), a string path keeps its name. The branch
// takes the main input and a map name -> tensor holding the reduced extra inputs (and, unchanged, any input
// passed under a name that is not an additional path, as the library passes other branch arguments through).
// Parameter j belongs to the j-th path in the order given, as the library's state_dict names it:
// additional_norms.j.gamma, additional_to_dynamic_input.j.{proj.weight, scale}, additional_static_input.j.
//
// Library bugs fixed (b.12): every additional_static_input.j has its own storage (the library makes them views
// of one tensor, so training one moves all), and channel_first works with extra inputs (the library crashes):
// then every tensor has its features on axis 1 — residuals and extra inputs [B·S, D, N*], branch input and
// reduced inputs [B, D, N*].
#pragma once

#include <map>
#include <string>
#include <vector>

#include "hcgrad/nn/connection.h"
#include "hcgrad/nn/hyper_connections.h"

namespace hcgrad::nn {

using NamedInputs = std::map<std::string, Tensor>;
// The branch of a multi-input connection: the main input and the (reduced) extra inputs by name.
using MultiInputBranch = std::function<Tensor(const Tensor&, const NamedInputs&)>;

struct AdditionalInputPath {
  std::string name;  // "1" for the library's integer path 1, else the keyword's name
  int64_t dim = 0;   // D_j; 0 = the module's dim
};

struct MultiInputHyperConnectionsOptions {
  int64_t dim = 0;          // D, the model width (required)
  int64_t layer_index = 0;  // picks the home stream: layer_index mod num_streams
  bool tanh = true;         // φ of the dynamic weights
  double dropout = 0.0;     // on the new residual streams
  bool channel_first = false;
  std::vector<AdditionalInputPath> additional_input_paths = {};
  DType dtype = DType::Float32;
  Generator* dropout_generator = nullptr;  // needed when dropout > 0
};

// The width step's result with the extra inputs.
struct MultiInputSplit {
  Tensor branch_input;
  NamedInputs inputs;  // the reduced extra inputs (and any passed-through ones)
  AddResidual add_residual;
};

class MultiInputHyperConnections : public ConnectionModule {
 public:
  // The library's ProjActScale: scale · φ(x Wᵀ) with W [out, in] (init 0, "proj.weight"), scale [] (init 0.01);
  // out == 1 drops the trailing axis.
  class ProjActScale : public Module {
   public:
    ProjActScale(int64_t in_features, int64_t out_features, bool tanh, DType dtype);
    Tensor forward(const Tensor& x) const;  // [..., in] -> [..., out] (or [...] when out == 1)
    class Projection : public Module {
     public:
      Projection(int64_t in_features, int64_t out_features, DType dtype);
      Tensor weight;  // [out, in]
    };
    std::shared_ptr<Projection> proj;
    Tensor scale;
    bool tanh;
  };
  // Parameters named "0", "1", ... (the library's nn.ParameterList).
  class ParameterList : public Module {
   public:
    Tensor push_back(const Tensor& value) { return register_parameter(std::to_string(size_++), value); }

   private:
    int64_t size_ = 0;
  };

  // `branch` (optional) is what forward() wraps.
  MultiInputHyperConnections(int64_t num_streams, MultiInputHyperConnectionsOptions options,
                             MultiInputBranch branch = {});

  struct Width {
    Tensor branch_input;  // [B, N*, D]   (channel_first: [B, D, N*])
    NamedInputs inputs;   // reduced extra inputs [B, N*, D_j] (channel_first: [B, D_j, N*]), plus passed-through ones
    Tensor residuals;     // [B, N*, S, D]: the mixed streams r (the library's internal layout)
    Tensor beta;          // [B, N*, S]
  };
  // residuals [B·S, N*, D]; `inputs` must hold every additional path, each [B·S, N*, D_j].
  Width width(const Tensor& residuals, const NamedInputs& inputs = {}) const;
  // new streams [B·S, N*, D] (channel_first: [B·S, D, N*]) from the branch output y, shaped as the branch input.
  Tensor add_residual(const Width& width, const Tensor& branch_output) const;

  MultiInputSplit split(const Tensor& residuals, const NamedInputs& inputs) const;
  // Only for a module without additional paths (the common interface has no extra inputs).
  ConnectionSplit split(const Tensor& residuals) const override;
  // The wrapped form: add_residual(branch(branch_input, reduced inputs)).
  Tensor forward(const Tensor& residuals, const NamedInputs& inputs = {}) const;
  std::string name() const override { return "MultiInputHyperConnections"; }

  int64_t num_streams, dim;
  bool tanh, channel_first;
  std::vector<AdditionalInputPath> additional_input_paths;  // dims filled in
  Tensor static_alpha;  // [S, 1 + S]
  Tensor static_beta;   // [S]
  std::shared_ptr<ProjActScale> dynamic_alpha_and_branch_input;  // D -> 1 + S
  std::shared_ptr<ProjActScale> dynamic_beta;                    // D -> 1
  std::shared_ptr<ScaledRMSNorm> norm;
  std::shared_ptr<ModuleList> additional_norms;             // j: ScaledRMSNorm(D_j)
  std::shared_ptr<ModuleList> additional_to_dynamic_input;  // j: ProjActScale(D_j -> 1)
  std::shared_ptr<ParameterList> additional_static_input;   // j: [S], init e_k

 private:
  Tensor reduce_input(size_t j, const Tensor& streams) const;  // extra input j, L1 with features last

  MultiInputBranch multi_input_branch_;
  std::vector<std::shared_ptr<ScaledRMSNorm>> input_norms_;
  std::vector<std::shared_ptr<ProjActScale>> input_projections_;
  std::vector<Tensor> input_static_weights_;
  std::shared_ptr<Dropout> dropout_;
  Generator unused_generator_;  // for a dropout of 0, which never draws
};

}  // namespace hcgrad::nn
