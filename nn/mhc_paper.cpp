#include "nn/mhc_paper.h"
