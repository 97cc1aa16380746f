// vit_digits: a small ViT on the 8x8 handwritten digits, with and without hyper-connections.
//
//   vit_digits [--connections residual,mhc] [--epochs 40] [--data data/digits.csv.gz] [--streams 4] [--seed 1]
//
// For each connection: the same split (20% held out for testing), the same initial weights outside the
// connections, AdamW with warm-up and cosine decay; the test accuracy every few epochs, then a table.
#include <chrono>
#include <cmath>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "digits.h"
#include "hcgrad/hcgrad.h"
#include "vit.h"

using namespace hcgrad;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string data = "data/digits.csv.gz";
  std::vector<std::string> connections{"residual", "mhc"};
  int64_t epochs = 60, batch = 64, streams = 4, warmup_epochs = 2;
  double lr = 2e-3, weight_decay = 0.05, test_fraction = 0.2;
  uint64_t seed = 1;
  int threads = 0;
  bool augment = true;  // shift each training image by up to a pixel
  vit::ViTConfig model;  // patch size, width, depth, heads (connection and streams are set per run)
};

// The fraction of images the model labels correctly (no gradient, eval mode).
double accuracy(vit::ViT& model, const vit::Digits& data) {
  autograd::NoGradGuard no_grad;
  model.eval();
  const double fraction = vit::fraction_correct(model.forward(data.images), data.labels);
  model.train();
  return fraction;
}

struct Result {
  std::string connection;
  int64_t parameters = 0;
  double test_accuracy = 0, seconds = 0;
};

Result train_one(const Options& o, const std::string& connection, const vit::DigitsSplit& data) {
  vit::ViTConfig config = o.model;
  config.connection = connection;
  config.streams = o.streams;
  vit::ViT model(config, o.seed);
  // Weight decay on the weight matrices only: not on biases, norms, the class token, the positions, nor the
  // connections' static weights (the HC authors' advice; the library's issue 4 traced a ViT's NaN to decaying them).
  std::vector<Tensor> decay, no_decay;
  for (const auto& [name, p] : model.named_parameters())
    (p.dim() == 2 && !nn::is_static_connection_weight(name) ? decay : no_decay).push_back(p);
  nn::AdamW optimizer({{.params = decay, .weight_decay = o.weight_decay}, {.params = no_decay, .weight_decay = 0.0}},
                      {.lr = o.lr, .weight_decay = o.weight_decay});
  const int64_t steps_per_epoch = (data.train.size() + o.batch - 1) / o.batch, total = o.epochs * steps_per_epoch;
  const nn::CosineSchedule schedule{.max_lr = o.lr, .min_lr = o.lr / 20, .warmup_steps = o.warmup_epochs * steps_per_epoch,
                                    .total_steps = total};
  std::printf("vit_digits: %s, %.0fk parameters, %lld epochs of %lld steps\n", config.describe().c_str(),
              model.num_parameters() / 1e3, (long long)o.epochs, (long long)steps_per_epoch);
  std::fflush(stdout);

  Generator order_gen(o.seed + 1), shift_gen(o.seed + 2);
  const auto start = Clock::now();
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    const std::vector<int64_t> order = vit::shuffled_indices(data.train.size(), order_gen);
    double loss_sum = 0;
    for (int64_t first = 0; first < data.train.size(); first += o.batch, ++step) {
      const int64_t count = std::min(o.batch, data.train.size() - first);
      const vit::Digits batch = vit::take(data.train, std::vector<int64_t>(order.begin() + first, order.begin() + first + count));
      optimizer.set_lr(schedule(step));
      const Tensor images = o.augment ? vit::shift_images(batch.images, shift_gen) : batch.images;
      Tensor loss = cross_entropy(model.forward(images), batch.labels);
      const double loss_value = loss.item();
      HC_CHECK(std::isfinite(loss_value), Error, "vit_digits: ", connection, ": loss is ", loss_value, " at step ",
               step + 1, " (epoch ", epoch, "); try a lower --lr");
      optimizer.zero_grad();
      loss.backward();
      nn::clip_grad_norm_(model.parameters(), 1.0);
      optimizer.step();
      loss_sum += loss_value * static_cast<double>(count);
    }
    if (epoch % 5 == 0 || epoch == o.epochs) {
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      std::printf("  epoch %3lld  train loss %.4f  test accuracy %.2f%%  (%.0f s)\n", (long long)epoch,
                  loss_sum / static_cast<double>(data.train.size()), 100 * accuracy(model, data.test), seconds);
      std::fflush(stdout);
    }
  }
  return {connection, model.num_parameters(), accuracy(model, data.test),
          std::chrono::duration<double>(Clock::now() - start).count()};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vit_digits: a small ViT with hyper-connections on the 8x8 handwritten digits"};
  Options o;
  app.add_option("--data", o.data, "digits.csv.gz (or the CSV unpacked)")->capture_default_str();
  app.add_option("--connections", o.connections, "comma-separated: residual, hc, mhc, mhc-identity, mhc-paper, mhc-paper-identity")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "passes over the training images")->capture_default_str();
  app.add_option("--batch", o.batch, "images per step")->capture_default_str();
  app.add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  app.add_option("--patch", o.model.patch_size, "patch side (divides 8)")->capture_default_str();
  app.add_option("--dim", o.model.dim, "model width")->capture_default_str();
  app.add_option("--depth", o.model.depth, "transformer layers")->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay (weight matrices only)")->capture_default_str();
  app.add_option("--streams", o.streams, "streams of every connection but residual")->capture_default_str();
  app.add_option("--seed", o.seed, "split, initialisation and batch order")->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0: all cores)")->capture_default_str();
  app.add_flag("!--no-augment", o.augment, "train on the images as they are (no random one-pixel shifts)");
  CLI11_PARSE(app, argc, argv);

  try {
    HC_CHECK(o.epochs > 0 && o.batch > 0 && o.lr > 0, Error, "vit_digits: --epochs, --batch and --lr must be positive");
    if (o.threads > 0) set_num_threads(o.threads);
    const vit::Digits all = vit::load_digits(o.data);
    const vit::DigitsSplit data = vit::split_digits(all, o.test_fraction, o.seed);
    std::printf("vit_digits: %lld training and %lld test images from %s, %d threads\n", (long long)data.train.size(),
                (long long)data.test.size(), o.data.c_str(), num_threads());
    std::vector<Result> results;
    for (const std::string& connection : o.connections) results.push_back(train_one(o, connection, data));
    std::printf("\n| connection | parameters | test accuracy | training time |\n|---|---|---|---|\n");
    for (const Result& r : results)
      std::printf("| %s | %lld | %.2f%% | %.0f s |\n", r.connection.c_str(), (long long)r.parameters,
                  100 * r.test_accuracy, r.seconds);
  } catch (const Error& e) {
    std::fprintf(stderr, "vit_digits: %s\n", e.what());
    return 1;
  }
  return 0;
}
