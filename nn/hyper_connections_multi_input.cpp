// MultiInputHyperConnections: equations in nn/hyper_connections_multi_input.h. Shapes below use B (batch),
// N (the middle dims N* flattened), S streams, D features (D_j for extra input j).
#include "hcgrad/nn/hyper_connections_multi_input.h"

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"
#include "hcgrad/nn/layout.h"

namespace hcgrad::nn {

using layout::concat_shape;
using layout::features_first;
using layout::features_last;
using layout::middle_dims;

namespace {

// [B·S, N*, D] -> [B, N, S, D]: per token, the S streams.
Tensor streams_of(const Tensor& l1, int64_t S) {
  const int64_t B = l1.shape()[0] / S, D = l1.shape().back(), N = l1.numel() / (B * S * D);
  return l1.reshape({B, S, N, D}).permute({0, 2, 1, 3});
}

}  // namespace

// ---- the small parameter holders ----

MultiInputHyperConnections::ProjActScale::Projection::Projection(int64_t in, int64_t out, DType dtype) {
  weight = register_parameter("weight", zeros({out, in}, {.dtype = dtype}));
}

MultiInputHyperConnections::ProjActScale::ProjActScale(int64_t in, int64_t out, bool use_tanh, DType dtype)
    : tanh(use_tanh) {
  proj = register_module("proj", std::make_shared<Projection>(in, out, dtype));
  scale = register_parameter("scale", full({}, 0.01, {.dtype = dtype}));
}

Tensor MultiInputHyperConnections::ProjActScale::forward(const Tensor& x) const {
  Tensor z = matmul(x, proj->weight.t());
  Tensor out = scale * (tanh ? hcgrad::tanh(z) : z);
  return proj->weight.shape()[0] == 1 ? out.squeeze(-1) : out;
}

// ---- MultiInputHyperConnections ----

MultiInputHyperConnections::MultiInputHyperConnections(int64_t S, MultiInputHyperConnectionsOptions o,
                                                       MultiInputBranch branch)
    : num_streams(S),
      dim(o.dim),
      tanh(o.tanh),
      channel_first(o.channel_first),
      additional_input_paths(o.additional_input_paths),
      multi_input_branch_(std::move(branch)) {
  HC_CHECK(S >= 1, Error, "MultiInputHyperConnections: num_streams must be >= 1, got ", S);
  HC_CHECK(o.dim > 0, Error, "MultiInputHyperConnections: dim must be positive, got ", o.dim);
  HC_CHECK(o.dropout == 0 || o.dropout_generator, Error,
           "MultiInputHyperConnections: dropout > 0 needs options.dropout_generator");
  // The common interface's forward(residuals) runs the branch with no extra inputs (split() rejects a module
  // that has additional paths).
  if (multi_input_branch_)
    branch_ = [this](const Tensor& u) { return multi_input_branch_(u, {}); };
  const int64_t home = ((o.layer_index % S) + S) % S;
  const TensorOptions options{.dtype = o.dtype};

  std::vector<double> alpha(static_cast<size_t>(S * (1 + S)), 0.0);  // [e_k | I]
  for (int64_t s = 0; s < S; ++s) {
    if (s == home) alpha[s * (1 + S)] = 1.0;
    alpha[s * (1 + S) + 1 + s] = 1.0;
  }
  static_alpha = register_parameter("static_alpha", from_vector(alpha, {S, 1 + S}).to(o.dtype));
  dynamic_alpha_and_branch_input =
      register_module("dynamic_alpha_and_branch_input", std::make_shared<ProjActScale>(o.dim, 1 + S, o.tanh, o.dtype));
  static_beta = register_parameter("static_beta", ones({S}, options));
  dynamic_beta = register_module("dynamic_beta", std::make_shared<ProjActScale>(o.dim, 1, o.tanh, o.dtype));
  norm = register_module("norm", std::make_shared<ScaledRMSNorm>(o.dim, o.dtype));

  additional_norms = register_module("additional_norms", std::make_shared<ModuleList>());
  additional_to_dynamic_input = register_module("additional_to_dynamic_input", std::make_shared<ModuleList>());
  additional_static_input = register_module("additional_static_input", std::make_shared<ParameterList>());
  for (size_t j = 0; j < additional_input_paths.size(); ++j) {
    AdditionalInputPath& path = additional_input_paths[j];
    HC_CHECK(!path.name.empty(), Error, "MultiInputHyperConnections: additional input path ", j, " has no name");
    for (size_t i = 0; i < j; ++i)
      HC_CHECK(additional_input_paths[i].name != path.name, Error,
               "MultiInputHyperConnections: additional input path '", path.name, "' is given twice");
    if (path.dim == 0) path.dim = o.dim;
    HC_CHECK(path.dim > 0, Error, "MultiInputHyperConnections: additional input '", path.name,
             "' needs a positive dim, got ", path.dim);
    input_norms_.push_back(additional_norms->push_back(std::make_shared<ScaledRMSNorm>(path.dim, o.dtype)));
    input_projections_.push_back(
        additional_to_dynamic_input->push_back(std::make_shared<ProjActScale>(path.dim, 1, o.tanh, o.dtype)));
    // Each its own tensor: the library's are views of one storage (b.12).
    Tensor home_weights = zeros({S}, options);
    home_weights.narrow(0, home, 1).fill_(1.0);
    input_static_weights_.push_back(additional_static_input->push_back(home_weights));
  }
  dropout_ = std::make_shared<Dropout>(o.dropout, o.dropout_generator ? *o.dropout_generator : unused_generator_);
  register_module("dropout", dropout_);
}

Tensor MultiInputHyperConnections::reduce_input(size_t j, const Tensor& l1) const {
  // w_s = a_j[s] + sj φ(p_j · RMSNorm(z_s)): [B, N, S]; reduced = Σ_s w_s z_s: [B, N, D_j]
  Tensor z = streams_of(l1, num_streams);
  Tensor weights = input_static_weights_[j] + input_projections_[j]->forward(input_norms_[j]->forward(z));
  const int64_t B = z.shape()[0], features = z.shape()[3];
  return matmul(weights.unsqueeze(-2), z).squeeze(-2).reshape(concat_shape({B}, middle_dims(l1), {features}));
}

MultiInputHyperConnections::Width MultiInputHyperConnections::width(const Tensor& input, const NamedInputs& inputs) const {
  const int64_t S = num_streams, D = dim;
  // Checks a tensor in the residual layout with `features` features; returns it with the features last.
  auto streams_features_last = [&](const std::string& what, const Tensor& t, int64_t features) {
    if (channel_first)
      HC_CHECK(t.dim() >= 3 && t.shape()[1] == features && t.shape()[0] % S == 0, ShapeError,
               "MultiInputHyperConnections: channel-first ", what, " ", t.shape(), " must be [B·S, ", features,
               ", ...] with the first dim a multiple of num_streams = ", S);
    else
      HC_CHECK(t.dim() >= 2 && t.shape().back() == features && t.shape()[0] % S == 0, ShapeError,
               "MultiInputHyperConnections: ", what, " ", t.shape(), " must be [B·S, ..., ", features,
               "] with the first dim a multiple of num_streams = ", S);
    return channel_first ? features_last(t) : t;
  };
  const Tensor residuals = streams_features_last("residuals", input, D);
  const Shape middle = middle_dims(residuals);
  const int64_t B = residuals.shape()[0] / S;

  Tensor x = streams_of(residuals, S);  // [B, N, S, D]
  Tensor x_hat = norm->forward(x);
  Tensor alpha = static_alpha + dynamic_alpha_and_branch_input->forward(x_hat);  // [B, N, S, 1 + S]
  Tensor beta = static_beta + dynamic_beta->forward(x_hat);                      // [B, N, S]
  Tensor m = matmul(alpha.transpose(-1, -2), x);                                 // [B, N, 1 + S, D]

  Width out;
  Tensor u = m.select(2, 0).reshape(concat_shape({B}, middle, {D}));
  out.branch_input = channel_first ? features_first(u) : u;
  out.residuals = m.narrow(2, 1, S).reshape(concat_shape({B}, middle, {S, D}));
  out.beta = beta.reshape(concat_shape({B}, middle, {S}));

  out.inputs = inputs;  // names that are not additional paths pass through unchanged
  for (size_t j = 0; j < additional_input_paths.size(); ++j) {
    const AdditionalInputPath& path = additional_input_paths[j];
    auto found = inputs.find(path.name);
    HC_CHECK(found != inputs.end(), Error, "MultiInputHyperConnections: missing additional input '", path.name,
             "' (residuals ", input.shape(), ")");
    Tensor z = streams_features_last("additional input '" + path.name + "'", found->second, path.dim);
    HC_CHECK(z.shape()[0] == residuals.shape()[0], ShapeError, "MultiInputHyperConnections: additional input '",
             path.name, "' ", found->second.shape(), " must have the residuals' first dim ", residuals.shape()[0]);
    Tensor reduced = reduce_input(j, z);
    out.inputs[path.name] = channel_first ? features_first(reduced) : reduced;
  }
  return out;
}

Tensor MultiInputHyperConnections::add_residual(const Width& w, const Tensor& branch_output) const {
  const int64_t S = num_streams, D = dim, B = w.residuals.shape()[0];
  const Shape middle(w.residuals.shape().begin() + 1, w.residuals.shape().end() - 2);
  const int64_t N = numel(middle);
  const Shape expected = concat_shape({B}, middle, {D});
  const Tensor y = channel_first && branch_output.dim() >= 2 ? features_last(branch_output) : branch_output;
  HC_CHECK(y.shape() == expected, ShapeError, "MultiInputHyperConnections: branch output ", branch_output.shape(),
           " must have the branch input's shape ", channel_first ? concat_shape({B, D}, middle, {}) : expected);
  // new_t = r_t + β_t y: [B, N, S, D] + [B, N, S, 1] · [B, N, 1, D]
  Tensor mixed = w.residuals.reshape({B, N, S, D}) + w.beta.reshape({B, N, S, 1}) * y.reshape({B, N, 1, D});
  Tensor out = mixed.permute({0, 2, 1, 3}).reshape(concat_shape({B * S}, middle, {D}));
  return dropout_->forward(channel_first ? features_first(out) : out);
}

MultiInputSplit MultiInputHyperConnections::split(const Tensor& residuals, const NamedInputs& inputs) const {
  auto w = std::make_shared<Width>(width(residuals, inputs));
  return {w->branch_input, w->inputs, [this, w](const Tensor& y) { return add_residual(*w, y); }};
}

ConnectionSplit MultiInputHyperConnections::split(const Tensor& residuals) const {
  HC_CHECK(additional_input_paths.empty(), Error, "MultiInputHyperConnections: this module has ",
           additional_input_paths.size(), " additional input path(s); call split(residuals, inputs) or ",
           "forward(residuals, inputs) with them (residuals ", residuals.shape(), ")");
  MultiInputSplit s = split(residuals, {});
  return {s.branch_input, s.add_residual};
}

Tensor MultiInputHyperConnections::forward(const Tensor& residuals, const NamedInputs& inputs) const {
  HC_CHECK(static_cast<bool>(multi_input_branch_), Error,
           "MultiInputHyperConnections: forward() needs a branch; without one call split(residuals, inputs) and "
           "add_residual()");
  MultiInputSplit s = split(residuals, inputs);
  return s.add_residual(multi_input_branch_(s.branch_input, s.inputs));
}

}  // namespace hcgrad::nn
