// PNG plots of tinylm's diagnostics and comparisons, rendered by gnuplot (Debian's gnuplot-nox, pngcairo).
// Each function writes its data files and a gnuplot script (plots.gp) into the directory, then runs gnuplot
// there; without gnuplot it says so once and leaves the CSVs and the script, to render later with
// `cd DIR && gnuplot plots.gp`.
#pragma once

#include <string>
#include <vector>

#include "hcgrad/nn/diagnostics.h"

namespace tinylm {

// Whether gnuplot is on PATH (checked once); without it the plots are left as gnuplot scripts.
bool gnuplot_available();

// One run's diagnostics directory (diagnostics.h wrote cosine.dat, gain.dat, sinkhorn.dat there).
struct PlotData {
  std::string dir, title;
  std::vector<hcgrad::nn::diagnostics::Matrix> single, composite;  // token-averaged H_res per layer; empty: none
  hcgrad::nn::diagnostics::Matrix unfolded;                        // HC eq. 27 (when single is not empty)
  bool has_sinkhorn = false;
};
// cosine.png; with maps also gain.png, maps.png (heatmaps), unfolded.png; sinkhorn.png for mHC.
void render_run_plots(const PlotData& plot);

// One variant of `tinylm compare`: its validation curve (curve.dat: step, mean, std over seeds), and the
// diagnostics directory of its first seed (empty: run without --diagnostics).
struct CompareVariant {
  std::string name, curve_file, diagnostics_dir;
  bool has_maps = false;
};
// val_loss.png (y axis up to y_max when > 0); with diagnostics also gain.png (composite gains per variant) and
// cosine.png.
void render_compare_plots(const std::string& dir, const std::vector<CompareVariant>& variants, int64_t seeds,
                          double y_max);

}  // namespace tinylm
