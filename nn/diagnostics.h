// What the streams of a hyper-connected network do, as numbers: the diagnostics the HC and mHC papers plot.
// Plain functions on small matrices (one H_res is S x S), so each can be checked on a matrix made by hand;
// tinylm's --diagnostics (examples/tinylm/diagnostics.cpp) feeds them a trained model's maps.
//
// Notation (mHC eq. 3): x_{l+1} = H_res_l x_l + H_post_l^T F_l(H_pre_l x_l) for sub-layers l = 1..L
// (attention and MLP count as separate layers, as in mHC Fig. 3), H_res row = destination stream.
#pragma once

#include <vector>

#include <Eigen/Dense>

#include "hcgrad/core/tensor.h"

namespace hcgrad::nn::diagnostics {

using Matrix = Eigen::MatrixXd;
using Vector = Eigen::VectorXd;

// mHC Fig. 3's "Amax gain magnitude" of one map: the largest |row sum| (how much the forward signal can grow),
// the largest |column sum| (the same for the gradient), and the smallest column sum (attenuation, which the
// max alone hides). A doubly stochastic matrix has all three equal to 1.
struct Gain {
  double max_abs_row_sum = 0, max_abs_col_sum = 0, min_col_sum = 0;
};
Gain amax_gain(const Matrix& h);

// The composite maps to the top (mHC eq. 4): composite[l] = H_res_{L-1} ... H_res_{l+1} H_res_l, the map from
// sub-layer l's input streams to the streams after the last layer (0-based l). Throws on non-square input.
std::vector<Matrix> composite_to_top(const std::vector<Matrix>& h_res);

// Gains of every layer's map and of its composite, each computed per token and then averaged over the tokens
// (mHC Fig. 3): h_res_per_token[token][layer].
struct LayerGains {
  std::vector<Gain> single, composite;
};
LayerGains token_averaged_gains(const std::vector<std::vector<Matrix>>& h_res_per_token);

// The element-wise mean of equally shaped matrices (token-averaged maps for the heatmaps, mHC Fig. 8).
Matrix mean_of(const std::vector<Matrix>& matrices);

// HC's unfolded connection matrix (HC eq. 27, Fig. 7): how much of sub-layer j's output reaches sub-layer k's
// input, c_kj = H_pre_k^T (H_res_{k-1} ... H_res_{j+1}) H_post_j. Row k - 1 for k = 1..L+1 (k = L + 1: the
// output, read as the sum of the streams), column j for j = 0..L (j = 0: the embedding, copied into every
// stream); zero above the diagonal (j >= k). Takes the (token-averaged) maps of layers 1..L.
Matrix unfolded_connection_matrix(const std::vector<Vector>& h_pre, const std::vector<Matrix>& h_res,
                                  const std::vector<Vector>& h_post);

// Median and 5-95% band of the cosine similarities of matching rows of a and b (HC Fig. 3: the inputs of
// consecutive layers, one row per token). Quantiles interpolate linearly, as numpy's default.
struct Spread {
  double p5 = 0, median = 0, p95 = 0;
};
Spread cosine_similarity_spread(const Matrix& a, const Matrix& b);
double quantile(std::vector<double> values, double q);  // q in [0, 1]

// How far a map is from doubly stochastic: max |row sum - 1| and max |column sum - 1| (the Sinkhorn sweep).
struct StochasticError {
  double max_row_error = 0, max_col_error = 0;
};
StochasticError stochastic_error(const Matrix& h);

// Tensor -> matrices. A float tensor [..., R, C] as its R x C matrices, in row-major order of the leading dims;
// [..., R] as R x 1 columns. (CPU or GPU; the values are copied to the host in float64.)
std::vector<Matrix> to_matrices(const Tensor& t);
std::vector<Vector> to_vectors(const Tensor& t);
Matrix to_matrix(const Tensor& t);  // a 2-D tensor

}  // namespace hcgrad::nn::diagnostics
