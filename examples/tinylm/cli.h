// tinylm's command line: the three subcommands and their flags (CLI11), apart from main() so that tests and
// the command-line fuzzer (tests/fuzz/fuzz_tinylm_cli.cpp) parse exactly what the program parses.
//
//   tinylm::Command command;
//   std::unique_ptr<CLI::App> app = tinylm::make_app(command);
//   app->parse(argc, argv);              // throws CLI::ParseError
//   tinylm::finish_parse(*app, command);  // which flags were given; the default streams
#pragma once

#include <memory>

#include <CLI/CLI.hpp>

#include "compare.h"
#include "trainer.h"

namespace tinylm {

struct Command {
  TrainOptions train;
  SampleOptions sample;
  CompareOptions compare;
  CLI::App* train_cmd = nullptr;
  CLI::App* sample_cmd = nullptr;
  CLI::App* compare_cmd = nullptr;
};

// The app, with every flag bound to a field of `command` (which must outlive it). Integer flags take decimal
// numbers only, refused with the flag's range when they do not fit (no silent clamping).
std::unique_ptr<CLI::App> make_app(Command& command);

// After a successful parse: records the train flags given explicitly (a resumed run refuses to change the
// others) and gives hc / mhc / frac their default streams or fractions.
void finish_parse(Command& command);

// After a parse error: "did you mean ...?" on stderr for each argument that is a near miss of a subcommand
// or of a flag of the chosen subcommand.
void suggest_corrections(const CLI::App& app, int argc, const char* const* argv);

}  // namespace tinylm
