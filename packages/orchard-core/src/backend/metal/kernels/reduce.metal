// Reduction family (encoded by ../reduce.cpp).
#include "common.h"
