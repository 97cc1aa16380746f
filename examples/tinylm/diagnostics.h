// tinylm train --diagnostics: what the streams learn, recorded on one fixed validation sequence.
//
// At every evaluation (cheap: one forward pass over one sequence, no gradient) into RUN/diagnostics/:
//   gain.csv     step, layer, kind (single | composite), max |row sum|, max |column sum|, min column sum of the
//                token-averaged Amax gain of each sub-layer's H_res and of the composite map to the top (mHC Fig. 3)
//   cosine.csv   step, layer, p5, median, p95 of the cosine similarity between the inputs of sub-layers l - 1, l
//                (HC Fig. 3), for every connection including the plain residual
// At the end of training:
//   maps.csv     kind, layer, row, col, value: token-averaged single-layer and composite H_res (mHC Fig. 8)
//   unfolded.csv k, j, value: the unfolded connection matrix (HC eq. 27, Fig. 7)
//   sinkhorn.csv iters, max and mean row / column-sum errors, ms_per_layer (mHC only): H_res recomputed
//                from the trained logits with t = 1, 3, 5, 10, 20, 50 Sinkhorn iterations
// and the PNG plots of them (plots.h). The math is nn/diagnostics.h.
#pragma once

#include <string>

#include "hcgrad/nn/gpt.h"
#include "step_csv.h"

namespace tinylm {

class Diagnostics {
 public:
  // `sequence`: int64 ids [1, T], on the model's device. Files go to `dir` (created); rows past
  // `resume_step` of an interrupted run are dropped.
  Diagnostics(std::string dir, hcgrad::Tensor sequence, int64_t resume_step);
  void record(const hcgrad::nn::GPT& model, int64_t step);
  // The end-of-training files, then the plots (when gnuplot is there). `title` names the run in the plots.
  void finish(const hcgrad::nn::GPT& model, const std::string& title);

 private:
  std::string dir_;
  hcgrad::Tensor sequence_;
  StepCsv gain_, cosine_;
};

}  // namespace tinylm
