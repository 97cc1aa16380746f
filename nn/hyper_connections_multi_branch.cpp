#include "nn/hyper_connections_multi_branch.h"
