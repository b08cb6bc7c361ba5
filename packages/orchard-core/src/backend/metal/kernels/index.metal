// Index family (encoded by ../index.cpp).
#include "common.h"
