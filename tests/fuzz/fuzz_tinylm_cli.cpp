// libFuzzer target for tinylm's command line (examples/tinylm/cli.h): the input, split at newlines, is the
// argument list after "tinylm". Whatever it is, parsing and the checks every subcommand makes before it
// reads or writes anything (checked_options, check_sample_options, check_compare_options) must end in success,
// a CLI11 parse error or an hcgrad::Error. Nothing is trained, sampled or written.
//
//   bash tools/fuzz.sh 60 tinylm_cli
//   build-fuzz/tests/fuzz/fuzz_tinylm_cli FILE
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cli.h"
#include "hcgrad/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args = {"tinylm"};
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (size_t begin = 0; begin <= text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    args.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());

  tinylm::Command command;
  std::unique_ptr<CLI::App> app = tinylm::make_app(command);
  try {
    app->parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Error&) {
    return 0;  // a parse error (or --help): main prints it and exits
  }
  try {
    tinylm::finish_parse(command);
    if (*command.train_cmd) {
      tinylm::checked_options(command.train);
    } else if (*command.compare_cmd) {
      tinylm::check_compare_options(command.compare);
    } else {
      tinylm::check_sample_options(command.sample);
    }
  } catch (const hcgrad::Error&) {
  }
  return 0;
}
