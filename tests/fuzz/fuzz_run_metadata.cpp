// libFuzzer target for tinylm's checkpoint metadata reader: the metadata a resume trusts (examples/tinylm/
// run_checkpoint.h, run_state_from; trainer.h, resumed_options and checked_options). A file without a checksum
// loads unverified, so these strings may be anything. Each input line "key=value" is one metadata entry; any
// input must give a RunState and options that pass the checks, or an hcgrad::Error — nothing else.
//
//   bash tools/fuzz.sh 60 run_metadata              # builds with clang, fuzzes for 60 seconds
//   build-fuzz/tests/fuzz/fuzz_run_metadata FILE     # replays one input
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "hcgrad/core/error.h"
#include "run_checkpoint.h"
#include "trainer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> metadata;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(begin, end - begin);
    const size_t equals = line.find('=');
    if (equals != std::string::npos) metadata[line.substr(0, equals)] = line.substr(equals + 1);
    begin = end + 1;
  }
  try {
    const tinylm::RunState state = tinylm::run_state_from(metadata, "fuzz input");
    tinylm::TrainOptions requested;
    requested.given = {"steps"};  // as if --steps were given, so the run's length comes from here
    requested.steps = state.step + 1;
    tinylm::TrainOptions resumed = tinylm::resumed_options(requested, state);
    tinylm::checked_options(resumed);
  } catch (const hcgrad::Error&) {
    // Refused with a message: what the reader is meant to do with bad metadata.
  }
  return 0;
}
