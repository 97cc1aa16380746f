#include "nn/hyper_connections_multi_input.h"
