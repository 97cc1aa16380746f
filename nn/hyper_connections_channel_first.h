// The `hyper-connections` library's separate channel-first module (hyper_connections_channel_first.py,
// docs/connections.md): Hyper-Connections for conv feature maps, residuals [B·S, D, H, W] with the
// streams folded into the batch (row b·S + s = stream s of item b) and the channels on axis 1. The library
// builds its dynamic weights from 1×1 convolutions; a 1×1 conv is a matmul over the channel axis, which is
// how this module computes them (any number >= 1 of spatial dims works; the library's Conv2d needs two).
//
// Per pixel it is HyperConnections with F = 1, V = 1 (HC paper eq. (1)-(9); nn/hyper_connections.h):
//   x̂_s       = RMSNorm over the channels of x_s                       (γ [D, 1, 1])
//   α[s, c]    = A[s, c] + sα · φ(Σ_d Wα[c, d] x̂_s[d])                  c = 0: branch, c = 1 + t: stream t
//   u          = Σ_s α[s, 0] x_s,     r_t = Σ_s α[s, 1 + t] x_s
//   β_s        = bβ[s] + sβ · φ(Σ_d Wβ[d] x̂_s[d])
//   new_t      = dropout(r_t + β_t · y)                                 y = branch(u), [B, D, H, W]
// φ = tanh (or the identity with tanh = false). At init (A = [e_k | I], k = layer_index mod S, β = 1, the
// dynamic weights 0) the branch reads the home stream and every stream becomes x_t + y.
//
// Unlike the main module's channel_first option (whose depth path is a documented library bug, b.3.7), this
// module is correct in the library, and hcgrad computes the same.
#pragma once

#include <memory>

#include "hcgrad/nn/connection.h"
#include "hcgrad/nn/layers.h"

namespace hcgrad::nn {

struct ChannelFirstHyperConnectionsOptions {
  int64_t dim = 0;          // D, the channels (required)
  int64_t layer_index = 0;  // picks the home stream: layer_index mod num_streams
  bool tanh = true;         // φ of the dynamic weights
  double dropout = 0.0;     // on the new residual streams
  DType dtype = DType::Float32;
  Generator* dropout_generator = nullptr;  // needed when dropout > 0
};

class ChannelFirstHyperConnections : public ConnectionModule {
 public:
  // A bias-free 1×1 convolution's weight [out, D, 1, 1], under the name "weight" (PyTorch's Conv2d).
  class Conv1x1 : public Module {
   public:
    Conv1x1(int64_t out_channels, int64_t in_channels, DType dtype);
    Tensor weight;  // [out, in, 1, 1], init 0
  };
  // The library's RMSNorm over axis 1: x / max(‖x‖₂, 1e-12) · √D · (γ + 1), the norm over the channels.
  class ChannelRMSNorm : public Module {
   public:
    ChannelRMSNorm(int64_t dim, DType dtype);
    Tensor forward_features_last(const Tensor& x) const;  // x [..., D]: the same norm, channels moved last
    int64_t dim;
    Tensor gamma;  // [D, 1, 1], init 0
  };

  // `branch` (optional) is what forward() wraps; the manual form width()/add_residual() needs none.
  ChannelFirstHyperConnections(int64_t num_streams, ChannelFirstHyperConnectionsOptions options, Branch branch = {});

  struct Width {
    Tensor branch_input;  // [B, D, H, W]
    Tensor residuals;     // [B·S, D, H, W]: the mixed streams r
    Tensor beta;          // [B, S, H, W]: β_s per pixel (the library's layout)
  };
  Width width(const Tensor& residuals) const;  // residuals [B·S, D, H, W]
  // new streams [B·S, D, H, W] from the branch output y [B, D, H, W].
  Tensor add_residual(const Width& width, const Tensor& branch_output) const;
  ConnectionSplit split(const Tensor& residuals) const override { return split_of(*this, residuals); }
  std::string name() const override { return "ChannelFirstHyperConnections"; }

  int64_t num_streams, dim;
  bool tanh;
  Tensor static_alpha;         // [S, 1 + S]
  Tensor static_beta;          // [S]
  Tensor dynamic_alpha_scale;  // []
  Tensor dynamic_beta_scale;   // []
  std::shared_ptr<Conv1x1> dynamic_alpha_fn;   // "dynamic_alpha_fn.weight" [1 + S, D, 1, 1]
  std::shared_ptr<ModuleList> dynamic_beta_fn;  // "dynamic_beta_fn.0.weight" [1, D, 1, 1] (an nn.Sequential there)
  std::shared_ptr<ChannelRMSNorm> norm;         // "norm.gamma" [D, 1, 1]

 private:
  std::shared_ptr<Conv1x1> beta_conv_;  // dynamic_beta_fn's only entry
  std::shared_ptr<Dropout> dropout_;
  Generator unused_generator_;  // for a dropout of 0, which never draws
};

}  // namespace hcgrad::nn
