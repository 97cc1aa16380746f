// gnuplot scripts for tinylm's plots (plots.h). The scripts are plain text a reader can edit and re-run.
#include "plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "hcgrad/core/error.h"
#include "step_csv.h"

namespace tinylm {

using hcgrad::nn::diagnostics::Matrix;
namespace fs = std::filesystem;

namespace {

const char* kTerminal = "set terminal pngcairo noenhanced font 'Sans,10' size %d,%d\n";

}  // namespace

bool gnuplot_available() {
  static const bool available = std::system("command -v gnuplot >/dev/null 2>&1") == 0;
  return available;
}

namespace {

// Runs `gnuplot plots.gp` inside dir; without gnuplot, says how to render the script later.
void run_gnuplot(const std::string& dir, const std::string& script) {
  const fs::path path = fs::path(dir) / "plots.gp";
  {
    std::ofstream out(path, std::ios::trunc);
    out << script;
    HC_CHECK(out, hcgrad::Error, "tinylm: cannot write ", path.string());
  }
  if (!gnuplot_available()) {
    std::printf("tinylm: gnuplot not found, so no PNG was made in %s. The data and plots.gp are there: install "
                "gnuplot (Debian: apt-get install gnuplot-nox; bash tools/run.sh compare installs it), then run: "
                "cd '%s' && gnuplot plots.gp\n", dir.c_str(), dir.c_str());
    return;
  }
  const std::string command = "cd '" + dir + "' && gnuplot plots.gp > plots.log 2>&1";
  if (std::system(command.c_str()) != 0)
    std::printf("tinylm: gnuplot failed on %s (see %s)\n", path.c_str(), (fs::path(dir) / "plots.log").c_str());
}

// Each compared variant's line style: dark colours that stay apart on white, and its own dash and point type, so
// lines that coincide (mHC's and the paper form's gains, both 1) stay visible as two.
std::string colour(size_t i) {
  static const char* colours[] = {"#000000", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"};
  return format("lc rgb '%s'", colours[i % (sizeof colours / sizeof colours[0])]);
}
// Later variants draw thinner lines and smaller points, so an earlier one under them still shows at the edges.
std::string line_style(size_t i) {
  const double step = static_cast<double>(std::min<size_t>(i, 5));
  return colour(i) + format(" dt %zu pt %zu lw %.2f ps %.2f", i % 4 + 1, 2 * (i % 7) + 4, 4.0 - 0.6 * step, 2.0 - 0.25 * step);
}

void write_matrix(const fs::path& path, const Matrix& m) {
  std::ofstream out(path, std::ios::trunc);
  for (int64_t r = 0; r < m.rows(); ++r) {
    for (int64_t c = 0; c < m.cols(); ++c) out << (c ? " " : "") << m(r, c);
    out << "\n";
  }
}

// Tick labels "(\"0.98\" 0, \"1.02\" 1, ...)" with the sums of a matrix's rows or columns.
std::string sum_tics(const Matrix& m, bool rows) {
  std::string tics = "(";
  const int64_t n = rows ? m.rows() : m.cols();
  for (int64_t i = 0; i < n; ++i)
    tics += format("%s\"%.2f\" %lld", i ? ", " : "", rows ? m.row(i).sum() : m.col(i).sum(), (long long)i);
  return tics + ")";
}

// One heatmap panel with its values written in the cells; xtics / ytics are gnuplot tic lists. With
// log_colour the colour follows sign(v) log10(1 + |v|), so entries of 1 and of 30 are both told apart from 0.
std::string heatmap_panel(const std::string& file, const Matrix& m, const std::string& title, double range,
                          const std::string& xtics, const std::string& ytics, bool log_colour = false) {
  std::string s = format("set title '%s'\n", title.c_str());
  s += format("set xrange [-0.5:%lld.5]\nset yrange [%lld.5:-0.5]\n", (long long)m.cols() - 1, (long long)m.rows() - 1);
  const double colour_range = log_colour ? std::log10(1 + range) : range;
  s += format("set cbrange [%g:%g]\n", -colour_range, colour_range);
  s += "set xtics " + xtics + "\nset ytics " + ytics + "\n";
  const char* colour_value = log_colour ? "(sgn($3) * log10(1 + abs($3)))" : "3";
  s += format("plot '%s' matrix using 1:2:%s with image notitle, '' matrix using 1:2:(sprintf('%%.2f', $3)) with "
              "labels font ',7' notitle\n", file.c_str(), colour_value);
  return s;
}

// A heatmap of an H_res: row sums on the y axis, column sums on the x axis (mHC Fig. 8).
std::string map_panel(const std::string& file, const Matrix& m, const std::string& title, double range) {
  return heatmap_panel(file, m, title, range, sum_tics(m, false) + " rotate by 45 right", sum_tics(m, true));
}

double max_abs(const std::vector<Matrix>& ms) {
  double m = 1e-9;
  for (const Matrix& x : ms) m = std::max(m, x.cwiseAbs().maxCoeff());
  return m;
}

}  // namespace

void render_run_plots(const PlotData& plot) {
  const fs::path dir(plot.dir);
  std::string s;
  s += format(kTerminal, 800, 480);
  s += "set grid\nset style fill transparent solid 0.25 noborder\n";
  s += "set output 'cosine.png'\nset title '" + plot.title + ": cosine similarity of consecutive sub-layer inputs'\n";
  s += "set xlabel 'sub-layer l (attention and MLP counted separately)'\nset ylabel 'cos(input l-1, input l)'\n"
       "set yrange [*:1.02]\nset key bottom right\n";
  s += "plot 'cosine.dat' using 1:2:4 with filledcurves title '5-95% of tokens', '' using 1:3 with linespoints "
       "lw 2 title 'median'\n";
  if (!plot.single.empty()) {
    s += "set yrange [*:*]\nset key default\nset output 'gain.png'\nset title '" + plot.title + ": Amax gain of H_res (token average)'\n";
    s += "set logscale y\nset yrange [0.5:*]\nset ylabel 'gain'\nset key outside right\n";
    s += "plot 'gain.dat' using 1:2 with linespoints title 'layer: max |row sum|', "
         "'' using 1:3 with linespoints title 'layer: max |col sum|', "
         "'' using 1:5 with linespoints lw 2 title 'composite l..top: max |row sum|', "
         "'' using 1:6 with linespoints lw 2 title 'composite: max |col sum|', "
         "'' using 1:7 with linespoints title 'composite: min col sum'\n";
    s += "unset logscale y\nset yrange [*:*]\nset key default\n";

    // Heatmaps (mHC Fig. 8): top row single-layer maps, bottom row the composite map from that layer to the top.
    const int64_t L = static_cast<int64_t>(plot.single.size());
    s += format(kTerminal, std::max<int64_t>(800, 210 * L), 520);
    s += "set output 'maps.png'\nunset grid\nset palette defined (-1 '#2166ac', 0 '#f7f7f7', 1 '#b2182b')\n";
    s += "unset colorbox\nset size ratio -1\nunset xlabel\nunset ylabel\n";
    s += format("set multiplot layout 2,%lld title '%s: token-averaged H_res (row = destination stream); tick "
                "labels are the row and column sums'\n", (long long)L, plot.title.c_str());
    const double single_range = max_abs(plot.single), composite_range = max_abs(plot.composite);
    for (int64_t l = 0; l < L; ++l) {
      const std::string file = format("maps-single-%lld.dat", (long long)l + 1);
      write_matrix(dir / file, plot.single[l]);
      s += map_panel(file, plot.single[l], format("H_res, layer %lld", (long long)l + 1), single_range);
    }
    for (int64_t l = 0; l < L; ++l) {
      const std::string file = format("maps-composite-%lld.dat", (long long)l + 1);
      write_matrix(dir / file, plot.composite[l]);
      s += map_panel(file, plot.composite[l], format("layers %lld..%lld", (long long)l + 1, (long long)L),
                     composite_range);
    }
    s += "unset multiplot\nset size noratio\n";

    // The unfolded connection matrix (HC Fig. 7).
    write_matrix(dir / "unfolded.dat", plot.unfolded);
    s += format(kTerminal, 640, 600);
    s += "set output 'unfolded.png'\nset size ratio -1\nunset colorbox\n";
    s += "set xlabel 'output of j (0: the embedding)'\nset ylabel 'input of k (last row: the model output)'\n";
    std::string rows = "(";
    for (int64_t k = 1; k <= L + 1; ++k)
      rows += format("%s\"%s\" %lld", k > 1 ? ", " : "", k <= L ? std::to_string(k).c_str() : "out", (long long)k - 1);
    s += heatmap_panel("unfolded.dat", plot.unfolded,
                       plot.title + ": unfolded connection matrix c_kj (HC eq. 27; colour: log scale)",
                       max_abs({plot.unfolded}), "1", rows + ")", /*log_colour=*/true);
    s += "set size noratio\n";
  }
  if (plot.has_sinkhorn) {
    s += format(kTerminal, 800, 480);
    s += "set output 'sinkhorn.png'\nset grid\nset title '" + plot.title +
         ": Sinkhorn iterations on the trained logits'\nset size noratio\nset xrange [*:*]\nset yrange [*:*]\n";
    s += "set xtics auto\nset ytics auto nomirror\nset logscale xy\nset xlabel 'iterations t'\n"
         "set ylabel '|sum - 1|'\nset format y '%.0e'\nset y2tics\nset y2label 'ms per layer (all tokens)'\n"
         "set key top right\n";
    s += "plot 'sinkhorn.dat' using 1:2 with linespoints title 'max row error', '' using 1:3 with linespoints "
         "title 'max column error', '' using 1:4 with linespoints dt 2 title 'mean row error', "
         "'' using 1:5 with linespoints dt 2 title 'mean column error', "
         "'' using 1:6 axes x1y2 with linespoints lw 2 title 'time (right axis)'\n";
  }
  run_gnuplot(plot.dir, s);
}

void render_compare_plots(const std::string& dir, const std::vector<CompareVariant>& variants, int64_t seeds,
                          double y_max) {
  std::string s = format(kTerminal, 900, 540);
  s += "set grid\nset style fill transparent solid 0.18 noborder\nset key top right\n";
  s += format("set output 'val_loss.png'\nset title 'validation loss: mean over %lld seed(s), band = +-1 std'\n",
              (long long)seeds);
  s += "set xlabel 'step'\nset ylabel 'val loss (nats/byte)'\n";
  if (y_max > 0) s += format("set yrange [*:%g]\n", y_max);  // the first evaluations would flatten the rest
  std::string bands, lines;
  for (size_t i = 0; i < variants.size(); ++i) {
    const std::string& file = variants[i].curve_file;
    bands += format("%s'%s' using 1:($2-$3):($2+$3) with filledcurves %s notitle", i ? ", " : "", file.c_str(),
                    colour(i).c_str());
    lines += format(", '%s' using 1:2 with linespoints %s title '%s'", file.c_str(), line_style(i).c_str(),
                    variants[i].name.c_str());
  }
  s += "plot " + bands + lines + "\n";

  std::string gains, cosines;
  for (size_t i = 0; i < variants.size(); ++i) {
    const CompareVariant& v = variants[i];
    if (v.diagnostics_dir.empty()) continue;
    const std::string style = line_style(i);
    cosines += format("%s'%s/cosine.dat' using 1:2:4 with filledcurves %s notitle, '' using 1:3 with "
                      "linespoints %s title '%s'", cosines.empty() ? "" : ", ", v.diagnostics_dir.c_str(),
                      colour(i).c_str(), style.c_str(), v.name.c_str());
    if (v.has_maps)
      gains += format("%s'%s/gain.dat' using 1:6 with linespoints %s title '%s: composite max |col sum|', "
                      "'' using 1:5 with linespoints lw 1 %s dt 2 pt 1 title '%s: composite max |row sum|'",
                      gains.empty() ? "" : ", ", v.diagnostics_dir.c_str(), style.c_str(), v.name.c_str(),
                      colour(i).c_str(), v.name.c_str());
  }
  s += "set xlabel 'sub-layer l (attention and MLP counted separately)'\n";
  if (!cosines.empty())
    s += "set output 'cosine.png'\nset title 'median and 5-95% cosine similarity of consecutive sub-layer inputs "
         "(seed 1)'\nset ylabel 'cos(input l-1, input l)'\nset yrange [*:1.02]\nset key bottom right\nplot " +
         cosines + "\nset key top right\n"
         "set yrange [*:*]\n";
  if (!gains.empty())
    s += "set output 'gain.png'\nset title 'Amax gain of the composite map from layer l to the top (seed 1)'\n"
         "set logscale y\nset yrange [0.5:*]\nset ylabel 'gain'\nplot " + gains + "\n";
  run_gnuplot(dir, s);
}

}  // namespace tinylm
