#include "nn/residuals.h"
