/* gradopt/version.h: compile-time and run-time version. */
#ifndef GRADOPT_VERSION_H
#define GRADOPT_VERSION_H

#include "common.h"

#define GOPT_VERSION_MAJOR 0
#define GOPT_VERSION_MINOR 1
#define GOPT_VERSION_PATCH 0
#define GOPT_VERSION_NUMBER (GOPT_VERSION_MAJOR * 10000 + GOPT_VERSION_MINOR * 100 + GOPT_VERSION_PATCH)
#define GOPT_VERSION_STRING "0.1.0"

GOPT_EXTERN_C_BEGIN

/* GOPT_VERSION_NUMBER of the library actually linked (may differ from the header's). */
GOPT_API unsigned gopt_version(void);
/* "MAJOR.MINOR.PATCH" of the library actually linked. */
GOPT_API const char *gopt_version_string(void);

GOPT_EXTERN_C_END

#endif /* GRADOPT_VERSION_H */
