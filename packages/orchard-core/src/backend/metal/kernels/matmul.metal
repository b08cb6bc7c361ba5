// Matmul (encoded by ../matmul.cpp).
#include "common.h"
