// (being written)
#include "helpers.h"
