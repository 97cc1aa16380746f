// The size of the last allocation that failed, for tinylm's out-of-memory message. hcgrad's tensors say their
// size themselves (OutOfMemoryError); any other std::bad_alloc in the program comes from the global operator
// new, which failed_allocation.cpp replaces (in the tinylm program only) to remember the size asked for.
#pragma once

#include <cstddef>

namespace tinylm {

size_t failed_allocation_bytes();  // 0 when none has failed

}  // namespace tinylm
