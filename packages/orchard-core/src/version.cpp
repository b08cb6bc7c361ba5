#include "orchard/version.h"

namespace orchard {

const char* version() { return ORCHARD_CORE_VERSION; }

}  // namespace orchard
