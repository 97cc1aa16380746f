// The stream diagnostics of nn/diagnostics.h.
#include "hcgrad/nn/diagnostics.h"

#include <algorithm>
#include <cmath>

#include "hcgrad/core/error.h"

namespace hcgrad::nn::diagnostics {

Gain amax_gain(const Matrix& h) {
  HC_CHECK(h.size() > 0, ShapeError, "amax_gain: empty matrix ", h.rows(), " x ", h.cols());
  const Vector rows = h.rowwise().sum(), cols = h.colwise().sum().transpose();
  return {rows.cwiseAbs().maxCoeff(), cols.cwiseAbs().maxCoeff(), cols.minCoeff()};
}

std::vector<Matrix> composite_to_top(const std::vector<Matrix>& h_res) {
  std::vector<Matrix> composite(h_res.size());
  // From the top down: composite[l] = composite[l + 1] * H_res_l.
  for (size_t i = h_res.size(); i-- > 0;) {
    HC_CHECK(h_res[i].rows() == h_res[i].cols() && h_res[i].rows() == h_res.back().rows(), ShapeError,
             "composite_to_top: layer ", i, "'s map is ", h_res[i].rows(), " x ", h_res[i].cols(), ", expected ",
             h_res.back().rows(), " x ", h_res.back().rows());
    composite[i] = i + 1 < h_res.size() ? Matrix(composite[i + 1] * h_res[i]) : h_res[i];
  }
  return composite;
}

LayerGains token_averaged_gains(const std::vector<std::vector<Matrix>>& h_res_per_token) {
  HC_CHECK(!h_res_per_token.empty(), Error, "token_averaged_gains: no tokens");
  const size_t layers = h_res_per_token.front().size();
  LayerGains mean{std::vector<Gain>(layers), std::vector<Gain>(layers)};
  auto add = [](Gain& sum, const Gain& g) {
    sum.max_abs_row_sum += g.max_abs_row_sum;
    sum.max_abs_col_sum += g.max_abs_col_sum;
    sum.min_col_sum += g.min_col_sum;
  };
  for (const auto& token : h_res_per_token) {
    HC_CHECK(token.size() == layers, ShapeError, "token_averaged_gains: tokens have ", layers, " and ", token.size(),
             " layers");
    const std::vector<Matrix> composite = composite_to_top(token);
    for (size_t l = 0; l < layers; ++l) {
      add(mean.single[l], amax_gain(token[l]));
      add(mean.composite[l], amax_gain(composite[l]));
    }
  }
  const double n = static_cast<double>(h_res_per_token.size());
  for (auto* gains : {&mean.single, &mean.composite})
    for (Gain& g : *gains) g = {g.max_abs_row_sum / n, g.max_abs_col_sum / n, g.min_col_sum / n};
  return mean;
}

Matrix mean_of(const std::vector<Matrix>& matrices) {
  HC_CHECK(!matrices.empty(), Error, "mean_of: no matrices");
  Matrix sum = Matrix::Zero(matrices.front().rows(), matrices.front().cols());
  for (const Matrix& m : matrices) {
    HC_CHECK(m.rows() == sum.rows() && m.cols() == sum.cols(), ShapeError, "mean_of: a ", m.rows(), " x ", m.cols(),
             " matrix among ", sum.rows(), " x ", sum.cols(), " ones");
    sum += m;
  }
  return sum / static_cast<double>(matrices.size());
}

Matrix unfolded_connection_matrix(const std::vector<Vector>& h_pre, const std::vector<Matrix>& h_res,
                                  const std::vector<Vector>& h_post) {
  const int64_t L = static_cast<int64_t>(h_res.size());
  HC_CHECK(L > 0 && static_cast<int64_t>(h_pre.size()) == L && static_cast<int64_t>(h_post.size()) == L, ShapeError,
           "unfolded_connection_matrix: ", h_pre.size(), " H_pre, ", L, " H_res and ", h_post.size(),
           " H_post maps; expected one of each per layer");
  const int64_t S = h_res.front().rows();
  for (int64_t l = 0; l < L; ++l)
    HC_CHECK(h_res[l].rows() == S && h_res[l].cols() == S && h_pre[l].size() == S && h_post[l].size() == S,
             ShapeError, "unfolded_connection_matrix: layer ", l + 1, " has H_pre ", h_pre[l].size(), ", H_res ",
             h_res[l].rows(), " x ", h_res[l].cols(), ", H_post ", h_post[l].size(), "; expected ", S, " streams");
  // Layer j's output enters the streams as `written` (j = 0: the embedding in every stream); each later layer
  // t < k mixes it by H_res_t; layer k reads H_pre_k^T of it (k = L + 1: the sum of the streams).
  Matrix c = Matrix::Zero(L + 1, L + 1);
  for (int64_t j = 0; j <= L; ++j) {
    Vector carried = j == 0 ? Vector::Ones(S) : h_post[j - 1];
    for (int64_t k = j + 1; k <= L + 1; ++k) {
      const Vector read = k == L + 1 ? Vector::Ones(S) : h_pre[k - 1];
      c(k - 1, j) = read.dot(carried);
      if (k <= L) carried = h_res[k - 1] * carried;  // on to layer k + 1: through layer k's residual mix
    }
  }
  return c;
}

double quantile(std::vector<double> values, double q) {
  HC_CHECK(!values.empty() && q >= 0 && q <= 1, Error, "quantile: ", values.size(), " values, q = ", q);
  std::sort(values.begin(), values.end());
  const double position = q * static_cast<double>(values.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (position - static_cast<double>(below)) * (values[above] - values[below]);
}

Spread cosine_similarity_spread(const Matrix& a, const Matrix& b) {
  HC_CHECK(a.rows() == b.rows() && a.cols() == b.cols() && a.rows() > 0, ShapeError,
           "cosine_similarity_spread: ", a.rows(), " x ", a.cols(), " vs ", b.rows(), " x ", b.cols());
  std::vector<double> cosines;
  for (int64_t r = 0; r < a.rows(); ++r) {
    const double norms = a.row(r).norm() * b.row(r).norm();
    cosines.push_back(norms > 0 ? a.row(r).dot(b.row(r)) / norms : 0.0);
  }
  return {quantile(cosines, 0.05), quantile(cosines, 0.5), quantile(cosines, 0.95)};
}

StochasticError stochastic_error(const Matrix& h) {
  const Vector ones_r = Vector::Ones(h.rows()), ones_c = Vector::Ones(h.cols());
  return {(h.rowwise().sum() - ones_r).cwiseAbs().maxCoeff(),
          (h.colwise().sum().transpose() - ones_c).cwiseAbs().maxCoeff()};
}

std::vector<Matrix> to_matrices(const Tensor& t) {
  HC_CHECK(t.dim() >= 2 && is_floating(t.dtype()), ShapeError, "to_matrices: expected a float tensor [..., R, C], got ",
           t.dtype(), " ", t.shape());
  const int64_t R = t.size(-2), C = t.size(-1);
  const std::vector<double> values = t.to(DType::Float64).to_vector<double>();
  std::vector<Matrix> out;
  for (size_t start = 0; start + R * C <= values.size() && R * C > 0; start += R * C)
    out.push_back(Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        values.data() + start, R, C));
  return out;
}

std::vector<Vector> to_vectors(const Tensor& t) {
  HC_CHECK(t.dim() >= 1, ShapeError, "to_vectors: expected a tensor [..., R], got ", t.shape());
  std::vector<Vector> out;
  for (const Matrix& m : to_matrices(t.unsqueeze(-1))) out.push_back(m.col(0));
  return out;
}

Matrix to_matrix(const Tensor& t) {
  HC_CHECK(t.dim() == 2, ShapeError, "to_matrix: expected a 2-D tensor, got ", t.shape());
  return to_matrices(t).front();
}

}  // namespace hcgrad::nn::diagnostics
