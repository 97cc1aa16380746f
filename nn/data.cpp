// placeholder: filled in by the nn work of issue 3
#include "nn/data.h"
