// cnn_digits: a small convolutional network on the 8x8 handwritten digits, the image-model counterpart of
// vit_digits (the same data, split and augmentation: examples/vit_digits/digits.h), with its residual blocks
// joined by a plain residual or by channel-first hyper-connections.
//
//   cnn_digits [--connection hc] [--streams 2] [--epochs 30] [--data data/digits.csv.gz] [--seed 1] [--threads N]
//
// The model, PyTorch's layers one for one:
//   [N, 1, 8, 8] -> Conv2d(1, 32, 3, padding 1) -> ReLU                                 the stem   [N, 32, 8, 8]
//   -> 2 residual blocks, branch Conv2d(32, 32, 3, padding 1) -> ReLU, joined by
//        residual: x + branch(x)
//        hc:       channel-first Hyper-Connections (nn/hyper_connections_channel_first.h) on S streams
//                  [N·S, 32, 8, 8], expanded from the stem's output and summed back after the blocks
//   -> MaxPool2d(2) -> Conv2d(32, 64, 3, padding 1) -> ReLU -> MaxPool2d(2) -> [N, 64·2·2] -> Linear(256, 10)
// trained with AdamW, warm-up and cosine decay, on images shifted by up to a pixel.
#include <chrono>
#include <cmath>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "digits.h"
#include "hcgrad/hcgrad.h"

using namespace hcgrad;

namespace {

struct Options {
  std::string data = "data/digits.csv.gz";
  std::string connection = "hc";
  int64_t streams = 2, epochs = 30, batch = 64;
  double lr = 2e-3, weight_decay = 0.01;
  uint64_t seed = 1;
  int threads = 0;
};

constexpr int64_t kWidth = 32, kBlocks = 2;

class DigitsCNN : public nn::Module {
 public:
  DigitsCNN(const Options& o, Generator& gen)
      : streams(o.connection == "hc" ? o.streams : 1),
        stem(register_module("stem", std::make_shared<nn::Conv2d>(1, kWidth, 3, gen, nn::ConvOptions{.padding = 1}))),
        blocks(register_module("blocks", std::make_shared<nn::ModuleList>())),
        connections(register_module("connections", std::make_shared<nn::ModuleList>())),
        conv(register_module("conv", std::make_shared<nn::Conv2d>(kWidth, 64, 3, gen, nn::ConvOptions{.padding = 1}))),
        head(register_module("head", std::make_shared<nn::Linear>(64 * 2 * 2, 10, gen))) {
    for (int64_t i = 0; i < kBlocks; ++i) {
      auto block = std::make_shared<nn::Conv2d>(kWidth, kWidth, 3, gen, nn::ConvOptions{.padding = 1});
      blocks->push_back(block);
      block_list.push_back(block);
      if (o.connection == "hc") {
        auto hc = std::make_shared<nn::ChannelFirstHyperConnections>(
            streams, nn::ChannelFirstHyperConnectionsOptions{.dim = kWidth, .layer_index = i},
            [block](const Tensor& x) { return relu(block->forward(x)); });
        connections->push_back(hc);
        hc_list.push_back(hc);
      }
    }
  }
  DigitsCNN(const DigitsCNN&) = delete;  // the connections' branches point at this model's blocks

  Tensor forward(const Tensor& images) const {  // [N, 1, 8, 8] -> [N, 10]
    Tensor x = relu(stem->forward(images));     // [N, 32, 8, 8]
    if (hc_list.empty()) {
      for (const auto& block : block_list) x = x + relu(block->forward(x));
    } else {
      // S copies of each image's features, stream s of image n at row n·S + s: [N·S, 32, 8, 8].
      const Shape shape = x.shape();  // a copy: x is reassigned below
      x = x.unsqueeze(1).expand({shape[0], streams, shape[1], shape[2], shape[3]}).reshape({-1, shape[1], shape[2], shape[3]});
      for (const auto& hc : hc_list) x = hc->forward(x);
      x = x.reshape({shape[0], streams, shape[1], shape[2], shape[3]}).sum({1});  // the streams summed back
    }
    x = max_pool2d(x, 2);                         // [N, 32, 4, 4]
    x = max_pool2d(relu(conv->forward(x)), 2);    // [N, 64, 2, 2]
    return head->forward(x.flatten(1));
  }

  int64_t streams;
  std::shared_ptr<nn::Conv2d> stem;
  std::shared_ptr<nn::ModuleList> blocks, connections;
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::Linear> head;
  std::vector<std::shared_ptr<nn::Conv2d>> block_list;
  std::vector<std::shared_ptr<nn::ChannelFirstHyperConnections>> hc_list;
};

double accuracy(const DigitsCNN& model, const vit::Digits& data) {
  autograd::NoGradGuard no_grad;
  return vit::fraction_correct(model.forward(data.images), data.labels);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cnn_digits: a small CNN on the 8x8 handwritten digits"};
  Options o;
  app.add_option("--data", o.data, "digits.csv.gz (or the CSV unpacked)")->capture_default_str();
  app.add_option("--connection", o.connection, "how the residual blocks join: residual or hc")
      ->check(CLI::IsMember({"residual", "hc"}))
      ->capture_default_str();
  app.add_option("--streams", o.streams, "hc: residual streams")->check(CLI::Range(1, 16))->capture_default_str();
  app.add_option("--epochs", o.epochs, "passes over the training images")->capture_default_str();
  app.add_option("--batch", o.batch, "images per step")->capture_default_str();
  app.add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  app.add_option("--seed", o.seed, "split, initialisation and batch order")->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0: all cores)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    HC_CHECK(o.epochs > 0 && o.batch > 0 && o.lr > 0, Error, "cnn_digits: --epochs, --batch and --lr must be positive");
    if (o.threads > 0) set_num_threads(o.threads);
    // 1. Data: 20% held out, as vit_digits.
    const vit::DigitsSplit data = vit::split_digits(vit::load_digits(o.data), 0.2, o.seed);

    // 2. Model and optimizer.
    Generator init(o.seed);
    DigitsCNN model(o, init);
    // Weight decay on the conv kernels and the head's matrix only: not on biases, nor on the connections'
    // weights, which start at the identity-like mix that decay would pull away from.
    std::vector<Tensor> decay, no_decay;
    for (const auto& [name, p] : model.named_parameters())
      (p.dim() >= 2 && name.rfind("connections.", 0) != 0 ? decay : no_decay).push_back(p);
    nn::AdamW optimizer({{.params = decay, .weight_decay = o.weight_decay}, {.params = no_decay, .weight_decay = 0.0}},
                        {.lr = o.lr, .weight_decay = o.weight_decay});
    const int64_t steps_per_epoch = (data.train.size() + o.batch - 1) / o.batch;
    const nn::CosineSchedule schedule{.max_lr = o.lr, .min_lr = o.lr / 20, .warmup_steps = steps_per_epoch,
                                      .total_steps = o.epochs * steps_per_epoch};
    std::printf("cnn_digits: %s, %lld training and %lld test images, %.1fk parameters, %d threads\n",
                o.connection == "hc" ? ("hyper-connections, " + std::to_string(o.streams) + " streams").c_str()
                                     : "residual",
                (long long)data.train.size(), (long long)data.test.size(), model.num_parameters() / 1e3,
                num_threads());

    // 3. Training: shuffled batches of shifted images.
    Generator order_gen(o.seed + 1), shift_gen(o.seed + 2);
    const auto start = std::chrono::steady_clock::now();
    int64_t step = 0;
    for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
      const std::vector<int64_t> order = vit::shuffled_indices(data.train.size(), order_gen);
      for (int64_t first = 0; first < data.train.size(); first += o.batch, ++step) {
        const int64_t count = std::min(o.batch, data.train.size() - first);
        const vit::Digits batch =
            vit::take(data.train, std::vector<int64_t>(order.begin() + first, order.begin() + first + count));
        optimizer.set_lr(schedule(step));
        Tensor loss = cross_entropy(model.forward(vit::shift_images(batch.images, shift_gen)), batch.labels);
        HC_CHECK(std::isfinite(loss.item()), Error, "cnn_digits: the loss is ", loss.item(), " at step ", step + 1,
                 "; try a lower --lr");
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
      }
      if (epoch % 5 == 0 || epoch == o.epochs)
        std::printf("  epoch %3lld  test accuracy %.2f%%  (%.0f s)\n", (long long)epoch, 100 * accuracy(model, data.test),
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      std::fflush(stdout);
    }
    std::printf("cnn_digits: test accuracy %.2f%%\n", 100 * accuracy(model, data.test));
  } catch (const Error& e) {
    std::fprintf(stderr, "cnn_digits: %s\n", e.what());
    return 1;
  }
  return 0;
}
