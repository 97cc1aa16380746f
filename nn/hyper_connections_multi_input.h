// (being written)
#pragma once
#include "nn/connection.h"
