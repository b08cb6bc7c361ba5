// Random family (encoded by ../random.cpp).
#include "common.h"
