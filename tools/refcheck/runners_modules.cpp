#include "refcheck.h"

namespace refcheck {

void add_module_runners(RunnerTable&) {}

}  // namespace refcheck
