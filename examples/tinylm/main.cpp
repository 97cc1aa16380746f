// tinylm: train a byte-level GPT on text, and sample from it.
//
//   tinylm train  [--data FILE] [--steps N] [--layers L --dim D --heads H --ctx T --batch B]
//                 [--connection residual|hc|frac|frac-paper|mhc|mhc-paper|mhc-identity|mhc-paper-identity
//                  [--streams S] [--fracs F]]
//                 [--lr X --warmup N --weight-decay X --clip X] [--seed S] [--threads N]
//                 [--eval-every N] [--out DIR] [--resume DIR] [--stop-at N] [--max-data-mb N]
//   tinylm compare [--connections residual,hc,frac,frac-paper,mhc,...] [--seeds 3] [--steps N] [--out DIR]
//                 [--diagnostics] [--streams S] [--threads N] [--layers L --dim D --heads H --ctx T --batch B]
//   tinylm sample --checkpoint FILE|DIR [--prompt STR] [--tokens N] [--temperature X] [--top-k K] [--seed S]
//
// Errors (bad flags, unreadable data, a corrupt checkpoint, a diverging run) print one message and exit
// non-zero; running out of memory, too. The flags are in cli.cpp, the work in trainer.cpp.
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <new>

#include "hcgrad/core/error.h"
#include "hcgrad/nn/distributed.h"
#include "cli.h"
#include "failed_allocation.h"

namespace {
// The work of main() below; its exit code.
int run(int argc, char** argv);

// "tinylm: ", or under mpirun "tinylm: rank 1 of 2: ": the message says which rank failed. In a static
// buffer: it is also printed when memory has run out.
const char* message_prefix() {
  namespace dist = hcgrad::nn::distributed;
  static char prefix[64];
  if (dist::world_size() == 1) return "tinylm: ";
  std::snprintf(prefix, sizeof prefix, "tinylm: rank %d of %d: ", dist::rank(), dist::world_size());
  return prefix;
}
}  // namespace

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) makes a write fail with EFBIG, reported as a full disk is, instead of killing
  // the process in the middle of a save.
  std::signal(SIGXFSZ, SIG_IGN);
  const int code = run(argc, argv);
  // A rank that failed ends the whole job: the other ranks may be waiting for it in a collective.
  if (code != 0 && hcgrad::nn::distributed::world_size() > 1) hcgrad::nn::distributed::abort_all(code);
  return code;
}

namespace {
int run(int argc, char** argv) {
  // Under mpirun every process is one rank of a data-parallel run (trainer.cpp); alone, MPI is not started.
  if (hcgrad::nn::distributed::launched_by_mpirun()) hcgrad::nn::distributed::init(&argc, &argv);
  tinylm::Command command;
  std::unique_ptr<CLI::App> app = tinylm::make_app(command);
  try {
    app->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app->exit(e);
    if (status != 0) tinylm::suggest_corrections(*app, argc, argv);
    return status;
  }

  try {
    tinylm::finish_parse(command);
    if (*command.train_cmd) {
      tinylm::train(command.train);
    } else if (*command.compare_cmd) {
      tinylm::compare(command.compare);
    } else {
      std::printf("%s\n", tinylm::sample(command.sample).c_str());
    }
  } catch (const hcgrad::Error& e) {
    std::fprintf(stderr, "%s%s\n", message_prefix(), e.what());
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {  // a file or directory the system refused
    std::fprintf(stderr, "%scannot use '%s': %s\n", message_prefix(), e.path1().c_str(),
                 e.code().message().c_str());
    return 1;
  } catch (const std::bad_alloc&) {  // memory for something other than a tensor (whose error names its size)
    std::fprintf(stderr, "%sout of memory: an allocation of %zu bytes failed (or went over the process's memory "
                 "limit); try a smaller model, batch or --data\n", message_prefix(),
                 tinylm::failed_allocation_bytes());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%sunexpected error: %s\n", message_prefix(), e.what());
    return 1;
  }
  return 0;
}
}  // namespace
