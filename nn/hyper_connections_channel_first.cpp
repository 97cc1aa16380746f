#include "nn/hyper_connections_channel_first.h"
