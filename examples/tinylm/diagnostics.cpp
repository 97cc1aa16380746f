// tinylm's --diagnostics (diagnostics.h): the trace of one validation sequence turned into CSV files and plots.
#include "diagnostics.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "hcgrad/nn/diagnostics.h"
#include "plots.h"

namespace tinylm {

using namespace hcgrad;
using namespace hcgrad::nn::diagnostics;
namespace fs = std::filesystem;

namespace {

// The maps of one forward pass, per layer and per token (only sub-layers whose connection reports maps).
struct TracedMaps {
  std::vector<std::vector<Matrix>> h_res_per_token;  // [token][layer]
  std::vector<std::vector<Matrix>> h_res_per_layer;  // [layer][token]
  std::vector<Vector> h_pre, h_post;                 // token-averaged, per layer
  bool empty() const { return h_res_per_layer.empty(); }
};

TracedMaps maps_of(const std::vector<nn::SubLayerTrace>& trace) {
  TracedMaps out;
  for (const nn::SubLayerTrace& layer : trace) {
    if (!layer.maps) return {};  // all or nothing: the GPT builds every connection alike
    out.h_res_per_layer.push_back(to_matrices(layer.maps->h_res));
    const std::vector<Vector> pre = to_vectors(layer.maps->h_pre), post = to_vectors(layer.maps->h_post);
    Vector pre_mean = Vector::Zero(pre.front().size()), post_mean = Vector::Zero(post.front().size());
    for (size_t t = 0; t < pre.size(); ++t) {
      pre_mean += pre[t];
      post_mean += post[t];
    }
    out.h_pre.push_back(pre_mean / static_cast<double>(pre.size()));
    out.h_post.push_back(post_mean / static_cast<double>(post.size()));
  }
  const size_t tokens = out.h_res_per_layer.empty() ? 0 : out.h_res_per_layer.front().size();
  out.h_res_per_token.assign(tokens, {});
  for (const auto& layer : out.h_res_per_layer)
    for (size_t t = 0; t < tokens; ++t) out.h_res_per_token[t].push_back(layer[t]);
  return out;
}

std::vector<Spread> cosine_spreads(const std::vector<nn::SubLayerTrace>& trace) {
  std::vector<Spread> out;
  for (size_t l = 1; l < trace.size(); ++l) {
    const Tensor& a = trace[l - 1].branch_input;
    const Tensor& b = trace[l].branch_input;
    out.push_back(cosine_similarity_spread(to_matrix(a.reshape({-1, a.size(-1)})), to_matrix(b.reshape({-1, b.size(-1)}))));
  }
  return out;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  HC_CHECK(out, Error, "tinylm: cannot write ", path.string());
}

}  // namespace

Diagnostics::Diagnostics(std::string dir, Tensor sequence, int64_t resume_step)
    : dir_(std::move(dir)), sequence_(std::move(sequence)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  HC_CHECK(!ec, hcgrad::Error, "diagnostics: cannot create '", dir_, "': ", ec.message());
  gain_ = StepCsv((fs::path(dir_) / "gain.csv").string(),
                  "step,layer,kind,max_abs_row_sum,max_abs_col_sum,min_col_sum", resume_step);
  cosine_ = StepCsv((fs::path(dir_) / "cosine.csv").string(), "step,layer,p5,median,p95", resume_step);
}

void Diagnostics::record(const nn::GPT& model, int64_t step) {
  const std::vector<nn::SubLayerTrace> trace = model.trace(sequence_);
  const TracedMaps maps = maps_of(trace);
  if (!maps.empty()) {
    const LayerGains gains = token_averaged_gains(maps.h_res_per_token);
    for (size_t l = 0; l < gains.single.size(); ++l)
      for (const auto& [kind, g] : {std::pair{"single", gains.single[l]}, std::pair{"composite", gains.composite[l]}})
        gain_.add(format("%lld,%zu,%s,%.6g,%.6g,%.6g", (long long)step, l + 1, kind, g.max_abs_row_sum,
                         g.max_abs_col_sum, g.min_col_sum));
  }
  const std::vector<Spread> cosines = cosine_spreads(trace);
  for (size_t l = 0; l < cosines.size(); ++l)
    cosine_.add(format("%lld,%zu,%.6f,%.6f,%.6f", (long long)step, l + 2, cosines[l].p5, cosines[l].median,
                       cosines[l].p95));
}

void Diagnostics::finish(const nn::GPT& model, const std::string& title) {
  const fs::path dir(dir_);
  const std::vector<nn::SubLayerTrace> trace = model.trace(sequence_);
  const TracedMaps maps = maps_of(trace);
  PlotData plot;
  plot.dir = dir_;
  plot.title = title;

  // Cosine similarity of consecutive layer inputs (every connection).
  std::string cosine_dat;
  const std::vector<Spread> cosines = cosine_spreads(trace);
  for (size_t l = 0; l < cosines.size(); ++l)
    cosine_dat += format("%zu %.6f %.6f %.6f\n", l + 2, cosines[l].p5, cosines[l].median, cosines[l].p95);
  write_file(dir / "cosine.dat", cosine_dat);

  if (!maps.empty()) {
    const size_t L = maps.h_res_per_layer.size();
    // Gains (Amax, mHC Fig. 3), as in gain.csv's last step.
    const LayerGains gains = token_averaged_gains(maps.h_res_per_token);
    std::string gain_dat;
    for (size_t l = 0; l < L; ++l) {
      const Gain &s = gains.single[l], &c = gains.composite[l];
      gain_dat += format("%zu %.6g %.6g %.6g %.6g %.6g %.6g\n", l + 1, s.max_abs_row_sum, s.max_abs_col_sum,
                         s.min_col_sum, c.max_abs_row_sum, c.max_abs_col_sum, c.min_col_sum);
    }
    write_file(dir / "gain.dat", gain_dat);

    // Token-averaged single-layer and composite maps (mHC Fig. 8).
    std::vector<std::vector<Matrix>> composite_per_layer(L);
    for (const auto& token : maps.h_res_per_token) {
      const std::vector<Matrix> composite = composite_to_top(token);
      for (size_t l = 0; l < L; ++l) composite_per_layer[l].push_back(composite[l]);
    }
    std::string maps_csv = "kind,layer,row,col,value\n";
    std::vector<Matrix> h_res_mean;
    for (size_t l = 0; l < L; ++l) {
      h_res_mean.push_back(mean_of(maps.h_res_per_layer[l]));
      plot.single.push_back(h_res_mean.back());
      plot.composite.push_back(mean_of(composite_per_layer[l]));
      for (const auto& [kind, m] : {std::pair{"single", plot.single.back()}, std::pair{"composite", plot.composite.back()}})
        for (int64_t r = 0; r < m.rows(); ++r)
          for (int64_t c = 0; c < m.cols(); ++c) maps_csv += format("%s,%zu,%lld,%lld,%.6g\n", kind, l + 1, (long long)r, (long long)c, m(r, c));
    }
    write_file(dir / "maps.csv", maps_csv);

    // HC's unfolded connection matrix from the token-averaged maps (HC eq. 27).
    plot.unfolded = unfolded_connection_matrix(maps.h_pre, h_res_mean, maps.h_post);
    std::string unfolded_csv = "k,j,value\n";
    for (int64_t k = 0; k < plot.unfolded.rows(); ++k)
      for (int64_t j = 0; j <= k; ++j) unfolded_csv += format("%lld,%lld,%.6g\n", (long long)k + 1, (long long)j, plot.unfolded(k, j));
    write_file(dir / "unfolded.csv", unfolded_csv);

    // The Sinkhorn sweep (mHC): the trained logits of every layer with t iterations instead of the module's own.
    if (trace.front().maps->h_res_with_iters) {
      std::string sweep_csv = "iters,max_row_error,max_col_error,mean_row_error,mean_col_error,ms_per_layer\n", sweep_dat;
      for (int64_t iters : {1, 3, 5, 10, 20, 50}) {
        double max_row = 0, max_col = 0, sum_row = 0, sum_col = 0, seconds = 0;
        int64_t count = 0;
        for (const nn::SubLayerTrace& layer : trace) {
          const auto start = std::chrono::steady_clock::now();
          const Tensor h = layer.maps->h_res_with_iters(iters).to(Device::cpu());
          seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          for (const Matrix& m : to_matrices(h)) {
            const StochasticError e = stochastic_error(m);
            max_row = std::max(max_row, e.max_row_error);
            max_col = std::max(max_col, e.max_col_error);
            sum_row += e.max_row_error;
            sum_col += e.max_col_error;
            ++count;
          }
        }
        const double ms = 1e3 * seconds / static_cast<double>(trace.size());
        const std::string row = format("%lld %.3g %.3g %.3g %.3g %.4f", (long long)iters, max_row, max_col,
                                       sum_row / count, sum_col / count, ms);
        sweep_dat += row + "\n";
        std::string csv_row = row;
        std::replace(csv_row.begin(), csv_row.end(), ' ', ',');
        sweep_csv += csv_row + "\n";
      }
      write_file(dir / "sinkhorn.csv", sweep_csv);
      write_file(dir / "sinkhorn.dat", sweep_dat);
      plot.has_sinkhorn = true;
    }
  }
  render_run_plots(plot);
}

}  // namespace tinylm
