// Depth-residual functions: how a connection merges the (β-weighted) branch output x with the mixed residual
// r in its depth step, in place of the plain x + r (HyperConnectionsOptions::depth_residual_fn). The library's
// residuals.py (docs/connections.md; the last two new in 0.4.11, tests/fixtures/connections/README.md).
// x and r have the same shape [..., N, D] (features last):
//
//   GatedResidual             g = σ(W [x ; r] + b) ([D] per token, or [1] unless fine_gate),  out = x + g ⊙ (r − x)
//   GRUGatedResidual          out = GRUCell(input = x, hidden = r), every leading axis a batch row
//   OrthogonalResidualUpdate  out = r + (x − (x·û) û),  û = r / max(‖r‖, 1e-12) over D: only the part of x
//                             orthogonal to the residual is added
//   MVSplitResidualUpdate     out = r + β ⊙ (x − mean_N x) + α ⊙ (mean_N x − mean_N r),  means over the tokens
//                             (axis −2): the mean of the update and its variation around it get separate gains
#pragma once

#include "hcgrad/core/random.h"
#include "hcgrad/nn/connection.h"
#include "hcgrad/nn/layers.h"

namespace hcgrad::nn {

class GatedResidual : public DepthResidual {
 public:
  // to_learned_mix: Linear(2·dim -> dim if fine_gate else 1), torch's default init drawn from gen.
  GatedResidual(int64_t dim, bool fine_gate, Generator& gen, DType dtype = DType::Float32);
  GatedResidual(int64_t dim, Generator& gen, DType dtype = DType::Float32) : GatedResidual(dim, false, gen, dtype) {}
  Tensor forward(const Tensor& x, const Tensor& residual) const override;

  int64_t dim;
  bool fine_gate;
  std::shared_ptr<Linear> to_learned_mix;  // weight [D or 1, 2D] (columns: x first, then r), bias [D or 1]
};

// torch.nn.GRUCell(dim, dim): parameter names and layouts as torch's, gates stacked in the order r, z, n.
class GRUCell : public Module {
 public:
  // Every parameter ~ U(-1/sqrt(dim), 1/sqrt(dim)), as torch.
  GRUCell(int64_t dim, Generator& gen, DType dtype = DType::Float32);
  Tensor forward(const Tensor& input, const Tensor& hidden) const;  // [M, D], [M, D] -> [M, D]

  int64_t dim;
  Tensor weight_ih, weight_hh;  // [3D, D]
  Tensor bias_ih, bias_hh;      // [3D]
};

class GRUGatedResidual : public DepthResidual {
 public:
  GRUGatedResidual(int64_t dim, Generator& gen, DType dtype = DType::Float32);
  Tensor forward(const Tensor& x, const Tensor& residual) const override;

  int64_t dim;
  std::shared_ptr<GRUCell> gru;
};

class OrthogonalResidualUpdate : public DepthResidual {
 public:
  // double_precision: the projection is computed in float64 and cast back to the inputs' dtype.
  explicit OrthogonalResidualUpdate(bool double_precision = true) : double_precision(double_precision) {}
  Tensor forward(const Tensor& x, const Tensor& residual) const override;

  bool double_precision;
};

class MVSplitResidualUpdate : public DepthResidual {
 public:
  MVSplitResidualUpdate(int64_t dim, double init_alpha = 0.0, double init_beta = 0.03, DType dtype = DType::Float32);
  Tensor forward(const Tensor& x, const Tensor& residual) const override;

  int64_t dim;
  Tensor alpha;  // [D], gain of the change of the token mean
  Tensor beta;   // [D], gain of x's variation around its token mean
};

}  // namespace hcgrad::nn
